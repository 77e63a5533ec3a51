"""Checks across all source adapters. Each source's counts, labels and splits on the real data are
tested in test_sources_text.py (8 text sources) and test_sources_memes.py (6 meme sources)."""



from somelvlm.data.report import DataReport
from somelvlm.data.sources import SOURCES, load_source


def test_registry_has_all_twenty_three_sources():
    first = {"tweeteval", "davidson", "paradetox", "liar", "constraint", "hahackathon", "isarcasmeval",
             "colbert_humor", "hmc", "harmeme", "cm_memes", "memotion", "mediaeval2016", "somelvlm_testset"}
    later = {"redditbias", "magpie", "twitter_gender", "mitweet", "political_social_media", "usvsthem",
             "polar_trial", "positive_frames", "cad_imdb"}
    assert set(SOURCES) == first | later and len(SOURCES) == 14 + 9


def test_adapters_are_deterministic(data_root):
    first = [(e.id, e.split) for e in load_source("constraint", data_root, DataReport())]
    again = [(e.id, e.split) for e in load_source("constraint", data_root, DataReport())]
    assert first == again


# ---- bad input, on files written here ------------------------------------------------------------

def test_missing_source_folder_is_reported_not_raised(tmp_path):
    report = DataReport()
    assert list(load_source("liar", tmp_path, report)) == []
    assert report.problems[0].reason == "missing source folder"
