"""Graceful shutdown: a stop signal lets requests already in flight finish with their answers."""

from __future__ import annotations

import concurrent.futures
import socket
import threading
import time

import pytest

pytest.importorskip("fastapi", reason='needs the serve extra: pip install "distilkit[serve]"')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_shutdown_finishes_in_flight_requests(ship_models):
    import httpx
    import uvicorn

    from distilkit.ship.serve.app import ServeConfig, create_app

    port = _free_port()
    app = create_app(ServeConfig(str(ship_models["student"]), port=port, backend="torch", threads=1))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.started

    batcher = app.state.batchers["student"]
    computing = threading.Event()
    real_predict = batcher.predict

    def slow_predict(items):
        computing.set()
        time.sleep(0.5)  # the batch is still computing when the stop arrives
        return real_predict(items)

    batcher.predict = slow_predict
    url = f"http://127.0.0.1:{port}/predict"
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(httpx.post, url, json={"text": f"the sea {i}"}, timeout=30) for i in range(8)]
        assert computing.wait(30)
        time.sleep(0.05)  # let every request reach the server
        server.should_exit = True  # what uvicorn's SIGTERM/SIGINT handler does
        responses = [f.result() for f in futures]
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert [r.status_code for r in responses] == [200] * 8
    assert all(r.json() for r in responses)  # each got its answer body
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
