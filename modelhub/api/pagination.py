from rest_framework import pagination


class PageNumberPagination(pagination.PageNumberPagination):
    """``page`` and ``page_size`` (at most 200) on every list."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200

    def get_paginated_response_schema(self, schema):
        described = super().get_paginated_response_schema(schema)
        descriptions = {
            "count": "Objects in all pages.",
            "next": "URL of the next page; null on the last.",
            "previous": "URL of the previous page; null on the first.",
            "results": "The objects of this page.",
        }
        for name, text in descriptions.items():
            described["properties"][name]["description"] = text
        return described
