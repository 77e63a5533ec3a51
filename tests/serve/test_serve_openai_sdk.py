"""The OpenAI-compatible endpoints through the real ``openai`` SDK against the real server on
loopback: usage, finish_reason, stop strings, SSE streaming (the SDK's ``stream=True`` iterator),
``models.retrieve``, the model's chat template for system + user turns, and a 400 naming each
option we do not support. The generators are the real ``lvlm`` backend over tiny random LMs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
import pytest

openai = pytest.importorskip("openai")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from gen_helpers import make_tiny_lm  # noqa: E402

USER = [{"role": "user", "content": "Rewrite politely: shut up"}]
SYSTEM_USER = [{"role": "system", "content": "You rewrite posts politely."},
               {"role": "user", "content": "you are an idiot, shut up."}]


def sdk(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def chatml_generator(tmp_path_factory):
    """A tiny random Llama whose tokenizer carries a ChatML template (like SmolLM2's), through the real lvlm backend."""
    from somelvlm.models.lvlm import LVLMGenerator

    folder = make_tiny_lm(tmp_path_factory.mktemp("chatml") / "tiny-chatml")
    return LVLMGenerator.from_base(folder, name="tiny-chatml")


@pytest.fixture(scope="module")
def chatml_server(start_server, tiny_analyzer, chatml_generator):
    return start_server(tiny_analyzer, chatml_generator)


def test_usage_and_finish_reason_length_match_the_generator_in_process(server, tiny_generator):
    from somelvlm.models.generation import GenerationConfig
    from somelvlm.models.lvlm import render_chat

    r = sdk(server).chat.completions.create(model="tiny-llama", messages=USER, max_tokens=6)
    expected = tiny_generator.generate([USER[0]["content"]], config=GenerationConfig(max_new_tokens=6))[0]
    prompt_tokens = len(tiny_generator.tokenizer(render_chat(tiny_generator.tokenizer, USER[0]["content"]),
                                                 add_special_tokens=False)["input_ids"])
    assert r.object == "chat.completion" and r.model == "tiny-llama"
    assert r.choices[0].message.content == expected and r.choices[0].message.role == "assistant"
    # a random LM does not end its answer within 6 tokens: the answer was cut by max_tokens
    assert r.choices[0].finish_reason == "length"
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == \
        (prompt_tokens, 6, prompt_tokens + 6)


def test_stop_strings_cut_the_answer_and_finish_with_stop(server):
    client = sdk(server)
    full = client.chat.completions.create(model="tiny-llama", messages=USER, max_tokens=12)
    words = full.choices[0].message.content.split()
    stop = words[2]
    cut = client.chat.completions.create(model="tiny-llama", messages=USER, max_tokens=12, stop=[stop, "\n\n"])
    assert cut.choices[0].message.content == full.choices[0].message.content.split(stop)[0].strip()
    assert cut.choices[0].finish_reason == "stop"
    assert cut.usage.completion_tokens < full.usage.completion_tokens == 12
    one = client.chat.completions.create(model="tiny-llama", messages=USER, max_tokens=12, stop=stop)  # a plain string
    assert one.choices[0].message.content == cut.choices[0].message.content


def test_sdk_stream_yields_role_content_deltas_finish_and_usage(server):
    client = sdk(server)
    whole = client.chat.completions.create(model="tiny-llama", messages=USER, max_tokens=12)
    chunks = list(client.chat.completions.create(model="tiny-llama", messages=USER, max_tokens=12, stream=True,
                                                 stream_options={"include_usage": True}))
    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    pieces = [c.choices[0].delta.content for c in chunks[1:] if c.choices and c.choices[0].delta.content]
    assert len(pieces) > 1, "the answer arrives in several pieces while it is generated"
    assert "".join(pieces) == whole.choices[0].message.content
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals == ["length"]
    assert chunks[-1].choices == [] and chunks[-1].usage.model_dump(include={"prompt_tokens", "completion_tokens"}) \
        == whole.usage.model_dump(include={"prompt_tokens", "completion_tokens"})
    # with a stop string the streamed text is cut as the whole answer is, and nothing past it is sent
    stop = whole.choices[0].message.content.split()[3]
    streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model="tiny-llama", messages=USER, max_tokens=12, stream=True, stop=stop) if c.choices)
    assert streamed == whole.choices[0].message.content.split(stop)[0].strip()


def test_raw_event_stream_ends_with_done(server):
    with httpx.stream("POST", server.url + "/v1/chat/completions", json={
            "model": "tiny-llama", "messages": USER, "max_tokens": 4, "stream": True}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = [line for line in r.iter_lines() if line]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    last = json.loads(events[-2][6:])
    assert last["choices"][0]["finish_reason"] == "length" and last["choices"][0]["delta"] == {}


def test_classifier_answers_a_stream_too(server):
    chunks = list(sdk(server).chat.completions.create(model="tiny-mini", messages=USER, stream=True,
                                                      extra_body={"tasks": ["emotion"]}))
    content = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert set(json.loads(content)["results"]) == {"emotion"}
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_streams_free_their_concurrency_slot(start_server, tiny_analyzer, tiny_generator):
    busy = start_server(tiny_analyzer, tiny_generator, max_concurrency=1)
    client = sdk(busy)
    for _ in range(3):
        assert list(client.chat.completions.create(model="tiny-llama", messages=USER, max_tokens=3, stream=True))
    assert client.chat.completions.create(model="tiny-llama", messages=USER, max_tokens=3).choices


def test_models_retrieve_and_404(server):
    client = sdk(server)
    assert client.models.retrieve("tiny-mini").id == "tiny-mini"
    assert client.models.retrieve("tiny-llama").model_extra["kind"] == "generator"
    assert [m.id for m in client.models.list()] == ["tiny-mini", "tiny-llama"]
    with pytest.raises(openai.NotFoundError) as err:
        client.models.retrieve("gpt-4o")
    assert "tiny-mini" in err.value.body["message"] and err.value.body["type"] == "not_found_error"


@pytest.mark.parametrize("option, value", [
    ("n", 2),
    ("tools", [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]),
    ("tool_choice", "required"),
    ("response_format", {"type": "json_object"}),
    ("logprobs", True),
    ("frequency_penalty", 0.5),
])
def test_unsupported_options_are_a_400_naming_them(server, option, value):
    with pytest.raises(openai.BadRequestError) as err:
        sdk(server).chat.completions.create(model="tiny-llama", messages=USER, max_tokens=2, **{option: value})
    assert err.value.body["param"] == option, err.value.body
    assert httpx.get(server.url + "/healthz").status_code == 200


def test_supported_defaults_and_bad_stops(server):
    client = sdk(server)
    ok = client.chat.completions.create(model="tiny-llama", messages=USER, max_tokens=2, n=1,
                                        response_format={"type": "text"}, logprobs=False, user="someone")
    assert ok.choices[0].message.content is not None
    for stop in (["a", "b", "c", "d", "e"], [""]):
        with pytest.raises(openai.BadRequestError) as err:
            client.chat.completions.create(model="tiny-llama", messages=USER, max_tokens=2, stop=stop)
        assert err.value.body["param"] == "stop"


def test_system_and_user_turns_go_through_the_chat_template(chatml_server, chatml_generator):
    """The rendered prompt is the template's (its token count is usage.prompt_tokens), not flattened
    ``System: ... User: ...`` text, and the answer is the in-process one for the same conversation."""
    from somelvlm.models.generation import GenerationConfig

    tok = chatml_generator.tokenizer
    rendered = tok.apply_chat_template(SYSTEM_USER, tokenize=False, add_generation_prompt=True)
    assert rendered.startswith("<|im_start|>system\nYou rewrite posts politely.<|im_end|>\n<|im_start|>user\n")
    flat = "System: You rewrite posts politely.\nUser: you are an idiot, shut up.\nAssistant:"
    template_tokens = len(tok(rendered, add_special_tokens=False)["input_ids"])
    assert template_tokens != len(tok(flat, add_special_tokens=False)["input_ids"])

    r = sdk(chatml_server).chat.completions.create(model="tiny-chatml", messages=SYSTEM_USER, max_tokens=8)
    assert r.usage.prompt_tokens == template_tokens
    local = chatml_generator.chat([SYSTEM_USER], config=GenerationConfig(max_new_tokens=8))[0]
    assert r.choices[0].message.content == local.text and r.choices[0].finish_reason == local.finish_reason
    # "developer" (the SDK's newer name for system) renders as system
    dev = [{"role": "developer", "content": SYSTEM_USER[0]["content"]}, SYSTEM_USER[1]]
    assert sdk(chatml_server).chat.completions.create(model="tiny-chatml", messages=dev, max_tokens=8).usage.prompt_tokens \
        == template_tokens
    # a multi-turn conversation keeps its assistant turn
    turns = SYSTEM_USER + [{"role": "assistant", "content": "please stop."}, {"role": "user", "content": "again"}]
    r = sdk(chatml_server).chat.completions.create(model="tiny-chatml", messages=turns, max_tokens=4)
    assert r.usage.prompt_tokens == len(tok(tok.apply_chat_template(turns, tokenize=False, add_generation_prompt=True),
                                            add_special_tokens=False)["input_ids"])


def test_two_images_in_one_conversation_are_refused(server):
    part = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}  # refused before decoding
    with pytest.raises(openai.BadRequestError) as err:
        sdk(server).chat.completions.create(model="tiny-llama", max_tokens=2, messages=[
            {"role": "user", "content": [{"type": "text", "text": "a"}, part]},
            {"role": "user", "content": [{"type": "text", "text": "b"}, part]}])
    assert "one image per conversation" in err.value.body["message"]
