"""The FastAPI app: ``create_app(config)`` wires the models, the micro-batchers, the guards, the
metrics and the routes.

Routes: ``POST /v1/analyze`` (JSON or multipart), ``POST /v1/generate``,
``POST /v1/chat/completions`` (OpenAI, streaming too), ``GET /v1/models`` and
``GET /v1/models/{id}``, ``GET /healthz``, ``GET /metrics``
(Prometheus), ``GET /`` (the web page), ``/docs`` and ``/openapi.json``.
"""


import asyncio
import json
import logging
import time
from contextlib import asynccontextmanager
from importlib import resources

from somelvlm.serve.config import ServeConfig
from somelvlm.serve.errors import APIError, error_body

log = logging.getLogger("somelvlm.serve")

NO_GENERATOR = ("no generative model loaded; start the server with --generator NAME_OR_FOLDER "
                "(the classifier answers chat completions with model '{model}')")


def _require_fastapi():
    try:
        import fastapi  # noqa: F401
        import prometheus_client  # noqa: F401
    except ImportError as err:
        raise ImportError(f"the server needs the serve extra: pip install 'somelvlm[serve]' ({err})") from None


def create_app(config: ServeConfig | None = None, *, analyzer=None, generator=None):
    """The ASGI app. ``analyzer`` / ``generator`` are built from ``config`` when not given (tests pass them)."""
    _require_fastapi()
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import FileResponse, JSONResponse, Response
    from fastapi.staticfiles import StaticFiles
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from starlette.requests import ClientDisconnect

    from somelvlm.posts import Limits
    from somelvlm.serve.batcher import MicroBatcher
    from somelvlm.serve.guards import CLIENT_CLOSED, ConcurrencyLimit, GuardMiddleware
    from somelvlm.serve.metrics import MetricsMiddleware, ServerMetrics
    from somelvlm.serve.schemas import (AnalyzeRequest, AnalyzeResponse, ChatRequest, GenerateRequest,
                                        GenerateResponse)
    from somelvlm.serve.service import AnalysisService

    config = config or ServeConfig()
    if config.threads:
        import torch

        torch.set_num_threads(config.threads)
    if analyzer is None:
        from somelvlm.pipeline import Pipeline

        analyzer = Pipeline(config.model, runtime=getattr(config, "runtime", "auto"), int8=config.int8,
                            ocr=config.ocr, threads=config.threads, auto_generator=False,
                            withheld=getattr(config, "withheld", False))
    if generator is None and config.generator:
        from somelvlm.models import load_generator

        generator = load_generator(config.generator)
    service = AnalysisService(analyzer, generator)
    limits = Limits(max_image_bytes=config.max_body_bytes, max_image_pixels=config.max_image_pixels)
    metrics = ServerMetrics()
    classify_batcher = MicroBatcher(service.classify, max_batch=config.max_batch, max_wait_ms=config.batch_wait_ms,
                                    key=lambda item: item[2], name="classify", on_batch=metrics.on_batch)
    task_batcher = MicroBatcher(service.generate_tasks, max_batch=config.max_batch, max_wait_ms=config.batch_wait_ms,
                                key=lambda item: item[1], name="generate_tasks", on_batch=metrics.on_batch)
    generate_batcher = MicroBatcher(service.generate, max_batch=config.max_batch, max_wait_ms=config.batch_wait_ms,
                                    key=lambda item: item[2], name="generate", on_batch=metrics.on_batch)
    from somelvlm.serve.chat import chat_key, run_chat

    chat_batcher = MicroBatcher(lambda items: run_chat(service.generator, items), max_batch=config.max_batch,
                                max_wait_ms=config.batch_wait_ms, key=chat_key, name="chat", on_batch=metrics.on_batch)
    limit = ConcurrencyLimit(config.max_concurrency)

    @asynccontextmanager
    async def lifespan(_app):
        yield
        await classify_batcher.close()
        await task_batcher.close()
        await generate_batcher.close()
        await chat_batcher.close()

    app = FastAPI(title="somelvlm", version=_version(), lifespan=lifespan,
                  description="Social-media posts through language and vision-language models: labels per "
                              "cognitive level, generation, and an OpenAI-compatible chat endpoint.")
    app.state.service, app.state.config, app.state.metrics = service, config, metrics
    app.state.batchers = {"classify": classify_batcher, "generate": generate_batcher, "generate_tasks": task_batcher,
                          "chat": chat_batcher}

    # ----- errors: always JSON, 4xx for what the client can fix -----------------------------------
    @app.exception_handler(APIError)
    async def _api_error(_request, err: APIError):
        return JSONResponse(error_body(err.status, err.message, err.type, err.param), err.status, headers=err.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request, err: RequestValidationError):
        return _validation_response(err.errors())

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request, err: StarletteHTTPException):
        kind = "not_found_error" if err.status_code == 404 else "invalid_request_error"
        return JSONResponse(error_body(err.status_code, str(err.detail), kind), err.status_code,
                            headers=getattr(err, "headers", None))

    @app.exception_handler(ClientDisconnect)
    async def _gone(request, _err: ClientDisconnect):  # the client left: nobody reads the answer
        request.scope[CLIENT_CLOSED] = True
        return Response(status_code=499)

    @app.exception_handler(Exception)
    async def _crash(_request, err: Exception):
        log.exception("unhandled error")
        return JSONResponse(error_body(500, f"internal error: {type(err).__name__}", "server_error"), 500)

    # ----- shared steps -----------------------------------------------------------------------------
    async def guarded(work):
        """Concurrency limit (429) and the per-request timeout (504) around one request's work (a coroutine function)."""
        with limit:
            try:
                return await asyncio.wait_for(work(), config.request_timeout_s)
            except TimeoutError:
                raise APIError(504, f"the request took longer than {config.request_timeout_s:g} s "
                                    "(--request-timeout-s)", type="timeout_error",
                               headers={"connection": "close"}) from None

    async def read_image(value: str | bytes | None, param: str, decode: bool = True):
        """The decoded image (None without one); ``decode=False``: only its header is checked, nothing
        decoded (no chosen task reads it), and its ``(width, height)`` as the models would read it comes back."""
        from somelvlm.serve.inputs import check_image_bytes, decode_base64_field, decode_image

        if value is None:
            return None
        data = value if isinstance(value, bytes) else decode_base64_field(value, param, config.max_body_bytes)
        if not decode:
            return check_image_bytes(data, limits, param)
        return await asyncio.to_thread(decode_image, data, limits, param)

    def gen_config(max_new_tokens: int, temperature: float, top_p: float, seed):
        from somelvlm.models.generation import GenerationConfig

        if max_new_tokens > config.max_new_tokens_limit:
            raise APIError(400, f"max_new_tokens {max_new_tokens} is over this server's limit "
                                f"{config.max_new_tokens_limit}", param="max_new_tokens")
        return GenerationConfig(max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p, seed=seed)

    async def analyze_post(req: AnalyzeRequest, image_value) -> dict:
        """One post through the pipeline: heads by micro-batch, then generation tasks by micro-batch."""
        from somelvlm.posts import Post, PostError, clean_text

        start = time.perf_counter()
        choice = service.choose(req.tasks, req.levels, req.generate, image=image_value is not None)
        try:
            has_text = clean_text(req.text, limits) is not None
        except PostError:
            has_text = True  # the text is refused below, with its own message
        needed = service.pipeline.needs_image(has_text, choice.classify + choice.generate)
        image = await read_image(image_value, "image", decode=needed)  # an image no task reads is not decoded
        size = image if isinstance(image, tuple) else (image.width, image.height) if image is not None else None
        image = None if isinstance(image, tuple) else image
        try:
            post = Post(id=req.id or "", text=clean_text(req.text, limits), image=image)
        except PostError as err:
            raise APIError(400, f"text: {err}" if req.text is not None else "send a text or an image",
                           param="text") from None
        row = await classify_batcher.submit((post, tuple(choice.classify), req.probability_digits))
        if isinstance(row, PostError):
            raise APIError(422, f"image: {row}", param="image")
        source = row.pop("text_source", "text")
        text_read = row.pop("text_read", None)
        results = {t: row[t] for t in choice.classify}
        generated = {}
        if choice.generate:
            read = Post(id=post.id, text=text_read or post.text, image=image)
            answers = await asyncio.gather(*(task_batcher.submit((read, t)) for t in choice.generate))
            generated = {t: a.get("text", a.get("label", "")) for t, a in zip(choice.generate, answers)}
        return {"id": req.id, "model": service.model_name, "text_source": source,
                "text_read": text_read if source != "text" else None,
                "image": {"width": size[0], "height": size[1]} if size is not None else None,
                "results": results, "generated": generated, "skipped": choice.skipped,
                "levels": service.by_level(results, generated), "seconds": round(time.perf_counter() - start, 4)}

    # ----- routes -----------------------------------------------------------------------------------
    analyze_body = {"requestBody": {"required": True, "content": {
        "application/json": {"schema": AnalyzeRequest.model_json_schema()},
        "multipart/form-data": {"schema": {"type": "object", "properties": {
            "text": {"type": "string"}, "image": {"type": "string", "format": "binary"},
            "tasks": {"type": "string", "description": "comma-separated"},
            "levels": {"type": "string", "description": "comma-separated"},
            "generate": {"type": "boolean"}, "probability_digits": {"type": "integer"}}}}}}}

    @app.post("/v1/analyze", response_model=AnalyzeResponse, openapi_extra=analyze_body, tags=["analyze"])
    async def analyze(request: Request):
        """Labels per task for one post (text and/or image), grouped by cognitive level."""
        req, image = await _parse_analyze(request)  # before taking a concurrency slot
        return await guarded(lambda: analyze_post(req, image))

    @app.post("/v1/generate", response_model=GenerateResponse, tags=["generate"])
    async def generate(req: GenerateRequest):
        """Texts from the generative model (503 when none is loaded)."""
        if service.generator is None:
            raise APIError(503, NO_GENERATOR.format(model=service.model_name), type="service_unavailable")

        async def work():
            start = time.perf_counter()
            images = req.images or [None] * len(req.prompts)
            if len(images) != len(req.prompts):
                raise APIError(400, f"images has {len(images)} entries for {len(req.prompts)} prompts", param="images")
            decoded = [await read_image(img, f"images[{i}]") for i, img in enumerate(images)]
            if any(img is not None for img in decoded):
                refuse_images_if_text_only(generator_reads_images(service.generator), service.generator.name, "images")
            cfg = gen_config(req.max_new_tokens, req.temperature, req.top_p, req.seed)
            texts = await asyncio.gather(*(generate_batcher.submit((p, img, cfg))
                                           for p, img in zip(req.prompts, decoded)))
            return {"model": service.generator.name, "texts": list(texts),
                    "seconds": round(time.perf_counter() - start, 4)}
        return await guarded(work)

    @app.post("/v1/chat/completions", tags=["openai"])
    async def chat_completions(req: ChatRequest):
        """OpenAI chat completions: the classifier's analysis as JSON text, or the generator's answer to
        the conversation (its chat template; ``stream``, ``stop``, ``usage``, ``finish_reason``)."""
        import dataclasses

        from fastapi.responses import StreamingResponse

        from somelvlm.serve.chat import (ChatItem, completion, conversation, last_user_turn, refuse_unsupported,
                                         single_answer_stream, stop_strings, stream_answer, usage_of)

        def events(body):
            return StreamingResponse(body, media_type="text/event-stream",
                                     headers={"cache-control": "no-cache", "x-accel-buffering": "no"})

        refuse_unsupported(req)
        stop = stop_strings(req)
        generator = service.generator
        if req.model == service.model_name:
            async def analysis():
                text, image, where = last_user_turn(req.messages)
                analyzed = await analyze_post(AnalyzeRequest(text=text or None, tasks=req.tasks, levels=req.levels,
                                                             probability_digits=req.probability_digits), image)
                content = {k: analyzed[k] for k in ("model", "text_source", "results", "generated", "skipped")}
                return json.dumps(content, ensure_ascii=False)
            content = await guarded(analysis)
            if req.stream:
                return events(single_answer_stream(service.model_name, content))
            return completion(service.model_name, content)
        if generator is None:
            raise APIError(503, NO_GENERATOR.format(model=service.model_name), type="service_unavailable",
                           param="model")
        if req.model != generator.name:
            raise APIError(404, f"model {req.model!r} is not served here; models: {service.model_name}, "
                                f"{generator.name}", type="not_found_error", param="model")
        turns, image_uri = conversation(req.messages)
        if hasattr(generator, "render_messages"):
            try:
                await asyncio.to_thread(generator.render_messages, turns)
            except Exception as err:  # noqa: BLE001 - the chat template refuses this conversation
                raise APIError(400, f"messages: the model's chat template refuses this conversation "
                                    f"({type(err).__name__}: {err})", param="messages") from None
        cfg = gen_config(req.max_completion_tokens or req.max_tokens or 128, req.temperature, req.top_p, req.seed)
        cfg = dataclasses.replace(cfg, stop=stop)

        async def prepare() -> ChatItem:
            image = await read_image(image_uri, "image_url")
            if image is not None:
                refuse_images_if_text_only(generator_reads_images(generator), generator.name, "image_url")
            return ChatItem(turns, image, cfg)

        if req.stream:
            item = await guarded(prepare)
            limit.__enter__()  # held while the answer streams (429 when busy), freed when the stream ends
            include_usage = bool(req.stream_options and req.stream_options.include_usage)
            return events(stream_answer(chat_batcher.submit, item, generator.name, include_usage,
                                        config.request_timeout_s, lambda: limit.__exit__(None, None, None)))

        async def work():
            item = await prepare()
            try:
                result = await chat_batcher.submit(item)
            finally:
                item.cancel.set()  # timed out or the client left: its decoding stops
            return completion(generator.name, result.text, result.finish_reason, usage_of(result))
        return await guarded(work)

    def model_entries() -> list[dict]:
        data = [{"id": service.model_name, "object": "model", "created": 0, "owned_by": "somelvlm",
                 "kind": "classifier", "tasks": service.pipeline.head_tasks, "heads": service.heads()}]
        if service.generator is not None:
            data.append({"id": service.generator.name, "object": "model", "created": 0, "owned_by": "somelvlm",
                         "kind": "generator"})
        return data

    @app.get("/v1/models", tags=["openai"])
    async def models():
        """OpenAI model list; the classifier's entry also lists its tasks and heads."""
        return {"object": "list", "data": model_entries()}

    @app.get("/v1/models/{model_id:path}", tags=["openai"])
    async def model(model_id: str):
        """One model of the list (OpenAI ``models.retrieve``); 404 for a model not served here."""
        for entry in model_entries():
            if entry["id"] == model_id:
                return entry
        raise APIError(404, f"model {model_id!r} is not served here; models: "
                            f"{', '.join(e['id'] for e in model_entries())}", type="not_found_error", param="model")

    @app.get("/v1/levels", tags=["analyze"])
    async def levels():
        """The cognitive levels and which of their tasks this server can run (for the page)."""
        from somelvlm.taxonomy.registry import tasks_by_level
        from somelvlm.taxonomy.levels import LEVELS

        heads = set(service.pipeline.head_tasks)
        grouped = tasks_by_level()
        return [{"id": lv.id, "name": lv.name, "description": lv.description,
                 "tasks": [t.name for t in grouped[lv.id]
                           if t.name in heads or (t.kind == "generation" and service.generator is not None)]}
                for lv in LEVELS]

    @app.get("/healthz", tags=["ops"])
    async def healthz():
        return {"status": "ok", "model": service.model_name,
                "generator": service.generator.name if service.generator is not None else None,
                "auth": bool(config.token)}

    @app.get("/metrics", tags=["ops"])
    async def prometheus():
        body, kind = metrics.render()
        return Response(body, media_type=kind)

    static = resources.files("somelvlm.serve") / "static"

    @app.get("/", include_in_schema=False)
    async def page():
        return FileResponse(str(static / "index.html"), media_type="text/html")

    app.mount("/static", StaticFiles(directory=str(static)), name="static")

    # ----- middleware: the last added is the outermost -------------------------------------------
    if config.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=config.cors_origins, allow_methods=["GET", "POST"],
                           allow_headers=["authorization", "content-type"])
    app.add_middleware(GuardMiddleware, token=config.token, max_body_bytes=config.max_body_bytes,
                       body_timeout_s=config.body_timeout_s, body_deadline_s=config.request_timeout_s)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("somelvlm")
    except Exception:  # noqa: BLE001 - running from a source tree
        return "0"


async def _parse_analyze(request):
    """``(AnalyzeRequest, image value)`` of an analyze request, JSON or multipart (415 otherwise)."""
    from somelvlm.serve.schemas import AnalyzeRequest

    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind in ("multipart/form-data", "application/x-www-form-urlencoded"):
        return await _parse_multipart(request)
    if kind in ("application/json", ""):
        req = _validate(AnalyzeRequest, await _read_json(request))
        return req, req.image
    raise APIError(415, f"Content-Type {kind!r}: send application/json or multipart/form-data", param="content-type")


async def _read_json(request):
    """The JSON body, depth-limited: the guard refuses bodies nested deeper than ``MAX_JSON_DEPTH``
    before this runs; a recursion error here still answers 400, never 500."""
    from somelvlm.serve.guards import MAX_JSON_DEPTH, json_depth

    body = await request.body()
    if not body.strip():
        raise APIError(400, "the body is empty: send a JSON object", param="body")
    too_deep = APIError(400, f"the JSON body is nested deeper than {MAX_JSON_DEPTH} levels of arrays and objects",
                        param="body")
    if json_depth(body) > MAX_JSON_DEPTH:
        raise too_deep
    try:
        return json.loads(body)
    except UnicodeDecodeError as err:
        raise APIError(400, f"the body is not UTF-8 (byte {err.start})", param="body") from None
    except json.JSONDecodeError as err:
        raise APIError(400, f"malformed JSON: {err.msg} at line {err.lineno} column {err.colno}", param="body") from None
    except RecursionError:
        raise too_deep from None


def _validate(model, payload):
    from pydantic import ValidationError

    if not isinstance(payload, dict):
        raise APIError(422, f"the body must be a JSON object, got {type(payload).__name__}", param="body")
    try:
        return model.model_validate(payload)
    except ValidationError as err:
        raise _as_api_error(err.errors()) from None


def _as_api_error(errors) -> APIError:
    first = errors[0]
    loc = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    if first.get("type") == "json_invalid":
        return APIError(400, f"malformed JSON: {first.get('msg')}", param="body")
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return APIError(422, f"{loc or 'body'}: {first.get('msg')}{more}", param=loc or "body")


def _validation_response(errors):
    from fastapi.responses import JSONResponse

    err = _as_api_error(errors)
    return JSONResponse(error_body(err.status, err.message, err.type, err.param), err.status)


async def _parse_multipart(request):
    """``(AnalyzeRequest, image bytes or None)`` from a form: text, image (file), tasks, levels, ..."""
    allowed = {"id", "text", "image", "tasks", "levels", "generate", "probability_digits"}
    form = await request.form(max_files=1, max_fields=len(allowed))
    try:
        return await _form_to_request(form, allowed)
    finally:
        await form.close()


async def _form_to_request(form, allowed: set[str]):
    from somelvlm.serve.schemas import AnalyzeRequest

    unknown = sorted(set(form.keys()) - allowed)
    if unknown:
        raise APIError(422, f"unknown form fields {unknown}; allowed: {sorted(allowed)}", param=unknown[0])
    image = None
    upload = form.get("image")
    if upload is not None and not isinstance(upload, str):
        image = await upload.read()
        if not image:
            image = None
    elif isinstance(upload, str) and upload:
        raise APIError(400, "image: upload the file itself (a form file field), not its name", param="image")

    def listed(name):
        values = [v for item in form.getlist(name) for v in str(item).split(",") if v.strip()]
        return [v.strip() for v in values] or None

    payload = {"id": form.get("id") or None, "text": form.get("text") or None, "tasks": listed("tasks"),
               "levels": listed("levels")}
    if form.get("generate") is not None:
        payload["generate"] = str(form.get("generate")).lower() in ("1", "true", "on", "yes")
    if form.get("probability_digits"):
        payload["probability_digits"] = form.get("probability_digits")
    return _validate(AnalyzeRequest, payload), image


def generator_reads_images(generator) -> bool:
    """Whether ``generator`` takes images; backends that do not say are assumed to (remote servers)."""
    return bool(getattr(generator, "reads_images", True))


def refuse_images_if_text_only(reads_images: bool, name: str, param: str) -> None:
    """A 400 naming the model, instead of a failure inside the batch, for an image sent to a text-only model."""
    if not reads_images:
        raise APIError(400, f"model {name!r} cannot read images (it has no vision connector): send text only",
                       param=param)
