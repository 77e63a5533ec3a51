"""One road: the same posts through ``somelvlm analyze`` (CLI), ``somelvlm.analyze`` (Python API),
``POST /v1/analyze`` and the OpenAI chat endpoint (``model: some-mini``) of a real server give the
same labels and probabilities, for a text post and for a meme (image + caption, where the
image+text heads answer the tasks whose image helps)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TASKS = ["emotion", "irony", "hate", "stance", "offensive_meme", "humor_rating"]
POSTS = [{"id": "t", "text": "Oh great, another Monday. I just LOVE spending three hours stuck in traffic."},
         {"id": "m", "text": "WHEN IT'S MONDAY AND THE COFFEE IS GONE", "image": "monday_meme.png"}]


def _close(a: dict, b: dict, where: str) -> None:
    """Same labels; every number within 1e-6 (``in_domain`` and other fields equal)."""
    assert set(a) == set(b), f"{where}: {sorted(a)} vs {sorted(b)}"
    for key in a:
        if isinstance(a[key], dict):
            _close(a[key], b[key], f"{where}.{key}")
        elif isinstance(a[key], float) and isinstance(b[key], float):
            assert abs(a[key] - b[key]) <= 1e-6, f"{where}.{key}: {a[key]} vs {b[key]}"
        else:
            assert a[key] == b[key], f"{where}.{key}: {a[key]!r} vs {b[key]!r}"


@pytest.fixture(scope="module")
def parity_server(start_server, shipped_analyzer):
    return start_server(shipped_analyzer)


def test_cli_api_server_and_chat_agree(tmp_path, parity_server, shipped_analyzer):
    import somelvlm
    from somelvlm.cli import main
    from somelvlm.posts import Post, load_image

    posts_file = tmp_path / "posts.jsonl"
    posts_file.write_text("".join(json.dumps(p) + "\n" for p in POSTS), encoding="utf-8")
    (tmp_path / "monday_meme.png").write_bytes((EXAMPLES / "monday_meme.png").read_bytes())
    out = tmp_path / "out.jsonl"
    main(["analyze", str(posts_file), "--out", str(out), "--tasks", ",".join(TASKS), "--no-show"])
    cli = {r.pop("id"): r for r in map(json.loads, out.read_text(encoding="utf-8").splitlines())}

    api_posts = [Post(id=p["id"], text=p["text"], image=load_image(EXAMPLES / p["image"]) if "image" in p else None)
                 for p in POSTS]
    api = dict(zip(["t", "m"], somelvlm.analyze(api_posts, tasks=TASKS)))

    image_b64 = base64.b64encode((EXAMPLES / "monday_meme.png").read_bytes()).decode()
    for post in POSTS:
        body = {"id": post["id"], "text": post["text"], "tasks": TASKS}
        if "image" in post:
            body["image"] = image_b64
        r = httpx.post(parity_server.url + "/v1/analyze", json=body, timeout=120)
        assert r.status_code == 200, r.text
        served = r.json()["results"]

        content = [{"type": "text", "text": post["text"]}]
        if "image" in post:
            content.append({"type": "image_url", "image_url": {"url": f"data:image/png;base64,{image_b64}"}})
        r = httpx.post(parity_server.url + "/v1/chat/completions", timeout=120,
                       json={"model": "some-mini", "messages": [{"role": "user", "content": content}], "tasks": TASKS})
        assert r.status_code == 200, r.text
        chat = json.loads(r.json()["choices"][0]["message"]["content"])["results"]

        pid = post["id"]
        _close(cli[pid], api[pid], f"cli vs api ({pid})")
        _close(cli[pid], served, f"cli vs server ({pid})")
        _close(cli[pid], chat, f"cli vs chat ({pid})")
    # the meme's image+text heads answered everywhere (where the image helps, image_helps chosen on val),
    # the text post's text heads; modality names the route
    image_tasks = shipped_analyzer.image_tasks & set(TASKS)
    assert "offensive_meme" in image_tasks
    for task in ("offensive_meme",):
        assert cli["m"][task]["modality"] == ("image+text" if task in image_tasks else "text")
        assert cli["t"][task]["modality"] == "text"
