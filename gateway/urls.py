from django.urls import path, re_path

from gateway import views

app_name = "gateway"

urlpatterns = [
    path("v1/chat/completions", views.chat_completions, name="chat-completions"),
    path("v1/completions", views.completions, name="completions"),
    path("v1/embeddings", views.embeddings, name="embeddings"),
    path("v1/responses", views.responses, name="responses"),
    path("v1/responses/<str:response_id>", views.response_detail, name="response-detail"),
    path(
        "v1/responses/<str:response_id>/input_items",
        views.response_input_items,
        name="response-input-items",
    ),
    path("v1/messages", views.messages, name="messages"),
    path("v1/messages/count_tokens", views.count_message_tokens, name="messages-count-tokens"),
    path("v1/models", views.models, name="models"),
    path("v1/models/<path:model_id>", views.model_detail, name="model-detail"),
    path("metrics", views.metrics, name="metrics"),
    re_path(r"^v1/(?P<path>.*)$", views.unknown_endpoint, name="unknown"),
]
