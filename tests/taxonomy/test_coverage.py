"""Our tasks cover most rows of SoMeLVLM's dataset table, and the README shows the table the code computes."""

from pathlib import Path

from somelvlm.taxonomy import all_tasks
from somelvlm.taxonomy.coverage import PAPER_ROWS, coverage, coverage_markdown
from somelvlm.taxonomy.levels import LEVELS, family_ids

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_paper_table_has_31_known_rows():
    assert len(PAPER_ROWS) == 31 and len({(lv, fam, dt) for lv, fam, dt, _ in PAPER_ROWS}) == 31
    assert {lv for lv, *_ in PAPER_ROWS} == set(LEVELS.ids())
    assert {fam for _, fam, *_ in PAPER_ROWS} <= set(family_ids())
    assert {dt for _, _, dt, _ in PAPER_ROWS} == {"text", "multi"}


def test_at_least_40_tasks_cover_at_least_25_rows():
    rows = coverage()
    assert len(all_tasks()) >= 40
    assert sum(r.covered for r in rows) >= 25
    by_key = {(r.level, r.family, r.data_type): r for r in rows}
    assert by_key[("knowledge_comprehension", "trust_bias", "text")].tasks == ("reddit_bias", "stereotype")
    assert by_key[("creation", "invert_opinion", "text")].trainable
    assert not by_key[("evaluation", "ideology_stance", "multi")].trainable  # published test items only


def test_readme_shows_the_computed_table():
    assert coverage_markdown() in README.read_text(encoding="utf-8")
