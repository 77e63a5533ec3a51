"""The endpoints on a real server (uvicorn on loopback): analyze (JSON and multipart), generate,
OpenAI chat completions and models, health, metrics, docs, the token and CORS."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest

MEME = Path(__file__).resolve().parents[2] / "examples" / "monday_meme.png"


def test_analyze_json_groups_results_by_level(server, tiny_analyzer):
    r = httpx.post(server.url + "/v1/analyze", json={"id": "p1", "text": "I just love Mondays... #not",
                                                      "tasks": ["emotion", "irony", "humor_rating", "stance"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"] == "p1" and body["model"] == "tiny-mini" and body["text_source"] == "text"
    assert list(body["results"]) == ["emotion", "irony", "stance", "humor_rating"]  # level order
    expected = tiny_analyzer.model.predict(["I just love Mondays... #not"], ["emotion", "irony", "humor_rating", "stance"])[0]
    assert body["results"] == expected  # the same numbers as somelvlm.analyze in-process
    levels = {lv["id"]: lv for lv in body["levels"]}
    assert [t["task"] for t in levels["knowledge_comprehension"]["tasks"]] == ["emotion", "irony", "stance"]
    assert [t["task"] for t in levels["application"]["tasks"]] == ["humor_rating"]
    assert 0 < levels["knowledge_comprehension"]["score"] <= 1 and levels["creation"]["score"] is None


def test_analyze_multipart_with_a_real_image_and_levels(server):
    with MEME.open("rb") as fh:
        r = httpx.post(server.url + "/v1/analyze", files={"image": ("meme.png", fh, "image/png")},
                       data={"text": "monday again", "levels": "evaluation,creation"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["image"] == {"width": 320, "height": 240}
    from somelvlm.taxonomy.registry import select_tasks

    text_generation = {t.name for t in select_tasks(levels=["evaluation", "creation"])
                       if t.kind == "generation" and t.modality == "text"}  # the tiny generator reads no images
    assert set(body["results"]) == {"verify_post"} and set(body["generated"]) == text_generation
    assert {"detoxify", "hashtags"} <= text_generation
    assert "claim_veracity" in body["skipped"]


def test_analyze_with_a_base64_data_uri(server):
    uri = "data:image/png;base64," + base64.b64encode(MEME.read_bytes()).decode()
    r = httpx.post(server.url + "/v1/analyze", json={"text": "caption", "image": uri, "tasks": ["hate"]})
    assert r.status_code == 200 and r.json()["image"]["width"] == 320


def test_generate_and_chat_match_the_generator_in_process(server, tiny_generator):
    from somelvlm.models.generation import GenerationConfig

    prompts = ["Rewrite politely: shut up", "Hashtags for: sunny day at the beach"]
    expected = tiny_generator.generate(prompts, config=GenerationConfig(max_new_tokens=12))
    r = httpx.post(server.url + "/v1/generate", json={"prompts": prompts, "max_new_tokens": 12})
    assert r.status_code == 200 and r.json()["texts"] == expected
    chat = httpx.post(server.url + "/v1/chat/completions", json={
        "model": "tiny-llama", "max_tokens": 12, "messages": [{"role": "user", "content": prompts[0]}]}).json()
    assert chat["object"] == "chat.completion" and chat["choices"][0]["message"]["content"] == expected[0]


def test_openai_generator_client_against_the_server(server, tiny_generator):
    from PIL import Image

    from somelvlm.models.generation import GENERATORS, GenerationConfig, Generator

    remote = GENERATORS.get("openai_http")(base_url=server.url + "/v1", model="tiny-llama", max_concurrency=4)
    assert isinstance(remote, Generator)
    prompts = ["a", "polite version of: you idiot", "hashtags: rain again"]
    config = GenerationConfig(max_new_tokens=8)
    assert remote.generate(prompts, None, config) == tiny_generator.generate(prompts, None, config)
    # the LLM judge runs over the same endpoint: text replies, the digit parsed (random words: mostly none)
    from somelvlm.evaluate.judge import judge_scores

    judged = judge_scores(remote, "detoxify", ["you idiot", "shut up"], ["you are wrong", "please stop"], ["x", ""])
    assert judged.mode == "text" and judged.total == 2 and len(judged.scores) == 2
    # the tiny generator has no connector: an image is a clear client error, and the server stays up
    r = httpx.post(server.url + "/v1/chat/completions", json={"model": "tiny-llama", "max_tokens": 4, "messages": [
        {"role": "user", "content": [{"type": "text", "text": "what is this?"}, {"type": "image_url", "image_url": {
            "url": "data:image/png;base64," + base64.b64encode(MEME.read_bytes()).decode()}}]}]})
    assert r.status_code == 400 and "cannot read images" in r.json()["error"]["message"], r.text
    assert httpx.get(server.url + "/healthz").status_code == 200
    assert Image  # PIL stays importable for the other tests


def test_chat_with_the_classifier_answers_the_analysis_as_json(server):
    uri = "data:image/png;base64," + base64.b64encode(MEME.read_bytes()).decode()
    r = httpx.post(server.url + "/v1/chat/completions", json={"model": "tiny-mini", "tasks": ["emotion"], "messages": [
        {"role": "system", "content": "ignored by the classifier"},
        {"role": "user", "content": [{"type": "text", "text": "love this"}, {"type": "image_url", "image_url": {"url": uri}}]}]})
    assert r.status_code == 200, r.text
    content = json.loads(r.json()["choices"][0]["message"]["content"])
    assert set(content["results"]) == {"emotion"} and content["model"] == "tiny-mini"


def test_models_health_metrics_docs_and_page(server):
    models = httpx.get(server.url + "/v1/models").json()["data"]
    assert [m["id"] for m in models] == ["tiny-mini", "tiny-llama"]
    assert {h["task"] for h in models[0]["heads"]} >= {"emotion", "stance"}
    assert httpx.get(server.url + "/healthz").json()["status"] == "ok"
    httpx.post(server.url + "/v1/analyze", json={"text": "x"})
    metrics = httpx.get(server.url + "/metrics")
    assert 'somelvlm_requests_total{method="POST",route="/v1/analyze",status="200"}' in metrics.text
    spec = httpx.get(server.url + "/openapi.json").json()
    assert {"/v1/analyze", "/v1/generate", "/v1/chat/completions", "/v1/models", "/healthz"} <= set(spec["paths"])
    assert httpx.get(server.url + "/docs").status_code == 200
    page = httpx.get(server.url + "/")
    assert page.status_code == 200 and "/static/app.js" in page.text
    assert "cdn" not in page.text.lower() and "http" not in httpx.get(server.url + "/static/app.js").text.split("SVG =")[0]


def test_without_a_generator_generative_endpoints_say_how_to_load_one(bare_server):
    r = httpx.post(bare_server.url + "/v1/generate", json={"prompts": ["hi"]})
    assert r.status_code == 503 and "--generator" in r.json()["error"]["message"]
    r = httpx.post(bare_server.url + "/v1/chat/completions", json={"model": "some-lvlm", "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 503 and "tiny-mini" in r.json()["error"]["message"]
    r = httpx.post(bare_server.url + "/v1/analyze", json={"text": "x", "levels": ["creation"]})
    assert r.status_code == 400 and "hashtags" in r.json()["error"]["message"]


def test_token_guards_the_api_but_not_health_or_page(start_server, tiny_analyzer):
    server = start_server(tiny_analyzer, token="s3cret-token")
    assert httpx.post(server.url + "/v1/analyze", json={"text": "x"}).status_code == 401
    wrong = httpx.post(server.url + "/v1/analyze", json={"text": "x"}, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.json()["error"]["type"] == "authentication_error"
    assert httpx.get(server.url + "/metrics").status_code == 401
    ok = httpx.post(server.url + "/v1/analyze", json={"text": "x"}, headers={"Authorization": "Bearer s3cret-token"})
    assert ok.status_code == 200
    assert httpx.get(server.url + "/healthz").json()["auth"] is True
    assert httpx.get(server.url + "/").status_code == 200
    assert httpx.get(server.url + "/v1/levels").status_code == 200  # the page lists levels before the token is typed


def test_token_from_the_environment(monkeypatch):
    from somelvlm.serve.config import ServeConfig

    monkeypatch.setenv("SOMELVLM_API_TOKEN", "from-the-env")
    assert ServeConfig().token == "from-the-env"
    with pytest.raises(ValueError, match="--token"):
        ServeConfig(token="short")
    with pytest.raises(ValueError, match="--max-concurrency"):
        ServeConfig(max_concurrency=0)


def test_cors_is_off_unless_asked(start_server, tiny_analyzer):
    origin = {"Origin": "https://example.org"}
    off = start_server(tiny_analyzer)
    assert "access-control-allow-origin" not in httpx.get(off.url + "/healthz", headers=origin).headers
    on = start_server(tiny_analyzer, cors_origins=["https://example.org"])
    assert httpx.get(on.url + "/healthz", headers=origin).headers["access-control-allow-origin"] == "https://example.org"


def test_a_remote_generator_folder_loads_through_the_registry(server, tiny_generator, tmp_path):
    from somelvlm.models.generation import GenerationConfig, load_generator

    folder = tmp_path / "remote-tiny"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"backend": "openai_http", "base_url": server.url + "/v1",
                                                    "model": "tiny-llama"}))
    remote = load_generator(str(folder))
    config = GenerationConfig(max_new_tokens=6)
    assert remote.name == "tiny-llama"
    assert remote.generate(["hello"], config=config) == tiny_generator.generate(["hello"], config=config)
