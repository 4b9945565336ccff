"""The API documentation pages (Swagger UI, ReDoc), self-contained.

Their assets come from drf-spectacular-sidecar, and the ReDoc template drops the Google
Fonts links; the bundles still hold a few remote URLs of their own (ReDoc's sidebar
shows Redocly's logo from cdn.redoc.ly). A Content-Security-Policy that allows this
site only keeps the browser from fetching any of them: reading the docs tells no third
party, and they work on a machine without internet.
"""

from __future__ import annotations

import functools

from drf_spectacular.views import SpectacularRedocView, SpectacularSwaggerView

# Inline scripts and styles: the pages' init script and the bundles' CSS-in-JS; blob:
# workers: ReDoc's search index; data: images and fonts: icons inlined in the bundles.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "worker-src 'self' blob:",
        "connect-src 'self'",
        "frame-ancestors 'self'",
    ]
)


def self_contained(view):
    """Serve ``view`` with a policy that lets the browser load nothing from elsewhere."""

    @functools.wraps(view)
    def wrapped(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        return response

    return wrapped


swagger_ui = self_contained(SpectacularSwaggerView.as_view(url_name="schema"))
redoc = self_contained(SpectacularRedocView.as_view(url_name="schema"))
