"""somelvlm: social-media posts through language and vision-language models.

Heavy pieces (torch, transformers, faiss, the server) import inside the functions that need
them, so ``import somelvlm`` stays fast and works with only the base dependencies.
"""

__version__ = "0.1.0"


def _load_ctranslate2_before_torch() -> None:
    """Load CTranslate2 (when installed) before torch. Loaded after torch, its OpenMP calls bind to
    torch's libgomp (global symbol scope): both thread teams then count against 2 cores, libgomp
    stops spinning, and a decode step takes 1.7x as long (42 against 23 ms for some-lvlm here)."""
    import importlib.util
    import sys

    if "torch" in sys.modules or importlib.util.find_spec("ctranslate2") is None:
        return
    try:
        import ctranslate2  # noqa: F401
    except Exception:  # a broken install must not break `import somelvlm`; the runtime says why later
        pass


_load_ctranslate2_before_torch()


def analyze(posts, tasks=None, levels=None, model=None):
    """Labels for each post; see :func:`somelvlm.analysis.analyze` (imports the model lazily)."""
    from somelvlm.analysis import analyze as _analyze

    return _analyze(posts, tasks=tasks, levels=levels, model=model)
