"""One adapter per folder of the data root, parsing the upstream's real files into Examples.

Each adapter is a function ``load(root: Path, report: DataReport) -> Iterator[Example]`` where
``root`` is the data root (the folder holding ``tweeteval/``, ``davidson/`` ...). Bad rows are
reported to ``report`` and skipped; the adapter never raises for bad input.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from somelvlm.data.example import Example
from somelvlm.data.report import DataReport
from somelvlm.registry import Registry

SOURCES = Registry(
    "data source",
    {
        name: f"somelvlm.data.sources.{name}:load"
        for name in (
            "tweeteval", "davidson", "paradetox", "liar", "constraint", "hahackathon",
            "isarcasmeval", "colbert_humor", "hmc", "harmeme", "cm_memes", "memotion",
            "mediaeval2016", "somelvlm_testset", "redditbias", "magpie", "twitter_gender", "mitweet",
            "political_social_media", "usvsthem", "polar_trial", "positive_frames", "cad_imdb",
        )
    },
)

RESEARCH_ONLY: frozenset[str] = frozenset(
    {"twitter_gender", "mitweet", "political_social_media", "polar_trial", "usvsthem"}
)
"""Sources whose upstream states no licence (the first four) or a non-commercial one (usvsthem, CC BY-NC
4.0): for evaluation and research runs only. The recipes of the weights we ship never train on a task
that draws on one (``tests/data/test_licences.py`` checks), and each such task's YAML says so in the
source's citation."""


def load_source(name: str, root: Path, report: DataReport) -> Iterator[Example]:
    """Examples of one source under the data ``root``; problems go to ``report``."""
    loader = SOURCES.get(name)
    folder = Path(root) / name
    if not folder.is_dir():
        report.problem(name, name, None, "missing source folder", f"expected {folder}")
        return iter(())
    return loader(Path(root), report)
