"""The micro-batcher gathers concurrent requests into fewer model calls (counted, never timed)."""

from __future__ import annotations

import asyncio
import threading

import httpx
import pytest

from somelvlm.serve.batcher import MicroBatcher


def test_concurrent_items_share_calls_and_keep_their_order():
    seen = []

    def double(items):
        seen.append(list(items))
        return [x * 2 for x in items]

    async def main():
        batcher = MicroBatcher(double, max_batch=8, max_wait_ms=50)
        results = await asyncio.gather(*(batcher.submit(i) for i in range(20)))
        await batcher.close()
        return results, batcher.calls

    results, calls = asyncio.run(main())
    assert results == [2 * i for i in range(20)]
    assert calls < 20 and calls == len(seen)
    assert max(len(b) for b in seen) <= 8


def test_items_with_different_keys_never_share_a_call_and_errors_reach_every_waiter():
    calls = []

    def fn(items):
        calls.append({k for k, _ in items})
        if any(v == "boom" for _, v in items):
            raise ValueError("model failed")
        return [v.upper() for _, v in items]

    async def main():
        batcher = MicroBatcher(fn, max_wait_ms=20, key=lambda item: item[0])
        ok = await asyncio.gather(batcher.submit(("a", "x")), batcher.submit(("b", "y")), batcher.submit(("a", "z")))
        failed = await asyncio.gather(batcher.submit(("c", "boom")), batcher.submit(("c", "fine")),
                                      return_exceptions=True)
        after = await batcher.submit(("a", "still up"))
        await batcher.close()
        return ok, failed, after

    ok, failed, after = asyncio.run(main())
    assert ok == ["X", "Y", "Z"]
    assert all(len(keys) == 1 for keys in calls)
    assert all(isinstance(f, ValueError) for f in failed)
    assert after == "STILL UP"


def test_the_server_answers_concurrent_posts_with_fewer_model_calls(server):
    batcher = server.server.config.app.state.batchers["classify"]
    before = batcher.calls
    texts = [f"post number {i} about mondays" for i in range(24)]
    results = [None] * len(texts)
    barrier = threading.Barrier(len(texts))

    def send(i):
        barrier.wait()
        results[i] = httpx.post(server.url + "/v1/analyze", json={"text": texts[i], "tasks": ["emotion"]}, timeout=30)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(r.status_code == 200 for r in results)
    calls = batcher.calls - before
    assert 1 <= calls < len(texts), f"{calls} model calls for {len(texts)} concurrent requests"
    metrics = httpx.get(server.url + "/metrics").text
    assert 'somelvlm_batch_size_count{batcher="classify"}' in metrics


@pytest.mark.parametrize("bad", [{"max_batch": 0}, {"max_wait_ms": 5, "max_batch": -1}])
def test_bad_batcher_options_fail_by_name(bad):
    with pytest.raises(ValueError, match="max_batch"):
        MicroBatcher(lambda xs: xs, **bad)
