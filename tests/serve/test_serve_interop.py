"""Interop: the project's own OpenAI-compatible client runs the evaluation harness against the
server and gets the same metrics as in-process, on real TweetEval test items.

The server runs the model in fp32 (its default): with dynamic int8 a post's probabilities depend on
the other posts in its batch, so remote and in-process metrics differ a little (measured: emotion
accuracy 77.0 remote vs 78.5 in-process on 200 test items)."""

from __future__ import annotations

import pytest

TASKS = ["emotion", "irony"]
LIMIT = 100


@pytest.mark.slow
def test_remote_evaluation_matches_in_process(start_server, shipped_analyzer, data_root):
    from somelvlm.evaluate.harness import evaluate_model
    from somelvlm.models.openai_http import OpenAIClassifier

    server = start_server(shipped_analyzer)
    local = evaluate_model(shipped_analyzer.model, TASKS, data_root, "test", limit=LIMIT)
    remote_model = OpenAIClassifier(server.url, model="some-mini", max_concurrency=8)
    assert remote_model.tasks == shipped_analyzer.head_tasks  # the heads the server serves (withheld ones left out)
    remote = evaluate_model(remote_model, TASKS, data_root, "test", limit=LIMIT)
    for task in TASKS:
        local_row = {k: v for k, v in local["tasks"][task].items() if k != "seconds"}
        remote_row = {k: v for k, v in remote["tasks"][task].items() if k != "seconds"}
        assert local_row["n"] == LIMIT
        assert remote_row == local_row, task


def test_remote_classifier_errors_name_the_server_reason(start_server, tiny_analyzer):
    from somelvlm.models.openai_http import OpenAIClassifier, RemoteError

    server = start_server(tiny_analyzer, token="a-long-token")
    with pytest.raises(RemoteError, match="401.*bearer token"):
        OpenAIClassifier(server.url, api_key="wrong-token")
    client = OpenAIClassifier(server.url, api_key="a-long-token")
    with pytest.raises(KeyError, match="emotion"):
        client.predict_proba(["x"], ["emotoin"])
    with pytest.raises(ValueError, match="serves no classifier"):
        OpenAIClassifier(server.url, model="gpt-4", api_key="a-long-token")
