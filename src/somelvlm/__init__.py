"""somelvlm: social-media posts through language and vision-language models.

Heavy pieces (torch, transformers, faiss, the server) import inside the functions that need
them, so ``import somelvlm`` stays fast and works with only the base dependencies.
"""

__version__ = "0.1.0"


def analyze(posts, tasks=None, levels=None, model=None):
    """Labels for each post; see :func:`somelvlm.analysis.analyze` (imports the model lazily)."""
    from somelvlm.analysis import analyze as _analyze

    return _analyze(posts, tasks=tasks, levels=levels, model=model)
