"""somelvlm: social-media posts through language and vision-language models.

Heavy pieces (torch, transformers, faiss, the server) import inside the functions that need
them, so ``import somelvlm`` stays fast and works with only the base dependencies.
"""

__version__ = "0.1.0"
