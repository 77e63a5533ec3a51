"""The server: REST and OpenAI-compatible endpoints over the compact classifier (and a generative
model when one is configured), micro-batched, guarded by limits, with a web page at ``/``.

>>> from somelvlm.serve import ServeConfig, serve        # doctest: +SKIP
>>> serve(ServeConfig(port=8000))                         # doctest: +SKIP

Needs the ``serve`` extra: ``pip install 'somelvlm[serve]'``.
"""

from somelvlm.serve.config import ServeConfig

__all__ = ["ServeConfig", "create_app", "serve"]


def __getattr__(name: str):  # the app factory imports FastAPI: load it only when asked for
    if name == "create_app":
        from somelvlm.serve.app import create_app

        return create_app
    if name == "serve":
        from somelvlm.serve.server import serve

        return serve
    raise AttributeError(name)
