"""serve: every endpoint, every bad input answered 4xx with a JSON error, micro-batching, no 5xx under mixed load."""

from __future__ import annotations

import concurrent.futures
import threading
import time

import numpy as np
import pytest

pytest.importorskip("fastapi", reason='needs the serve extra: pip install "distilkit[serve]"')
pytest.importorskip("httpx", reason='needs the serve extra: pip install "distilkit[serve]"')

from fastapi.testclient import TestClient

from distilkit.errors import ConfigError
from distilkit.ship.serve.app import ServeConfig, create_app
from distilkit.ship.serve.predictor import load_predictor


@pytest.fixture(scope="module")
def pair(ship_models):
    """A classifier teacher and student behind one app, with small limits."""
    config = ServeConfig(
        str(ship_models["student"]), str(ship_models["teacher"]), backend="torch", max_chars=200, max_texts=8,
        max_body_bytes=4096, max_batch=16, max_wait_ms=20, threads=1,
    )  # fmt: skip
    app = create_app(config)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield app, client


def test_health_info_and_page(pair):
    _, client = pair
    assert client.get("/health").json() == {"status": "ok", "models": ["student", "teacher"]}
    info = client.get("/info").json()
    assert info["models"]["student"]["kind"] == "classification" and info["models"]["student"]["layers"] == 2
    assert info["models"]["teacher"]["layers"] == 4 and info["models"]["student"]["params"] > 0
    assert info["models"]["student"]["backend"] == "pytorch fp32" and info["limits"]["max_chars"] == 200
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'id="answer-teacher"' in page.text and 'id="answer-student"' in page.text
    assert client.get("/static/app.js").status_code == 200 and client.get("/static/style.css").status_code == 200


def test_predict_one_text_and_a_list(pair):
    _, client = pair
    one = client.post("/predict", json={"text": "the old man and the sea"}).json()
    assert one["model"] == "student" and one["kind"] == "classification" and one["latency_ms"] > 0
    (prediction,) = one["predictions"]
    assert prediction["label"] in ("negative", "positive")
    assert sum(prediction["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert prediction["score"] == max(prediction["probabilities"].values())
    many = client.post("/predict", json={"texts": ["a good day", "a bad night", "the sea"], "model": "teacher"}).json()
    assert many["model"] == "teacher" and len(many["predictions"]) == 3
    # Batched and alone give the same answer.
    alone = client.post("/predict", json={"text": "a bad night", "model": "teacher"}).json()["predictions"][0]
    assert many["predictions"][1]["probabilities"] == pytest.approx(alone["probabilities"], abs=1e-5)


BAD_REQUESTS = [
    ({"text": ""}, 422, "empty"),
    ({"text": "   \n"}, 422, "empty"),
    ({"text": "sea " * 100}, 422, "limit is 200"),
    ({"texts": []}, 422, "non-empty list"),
    ({"texts": ["ok", ""]}, 422, "text 1 is empty"),
    ({"texts": ["a"] * 9}, 422, "limit is 8"),
    ({"texts": "not a list"}, 422, "non-empty list"),
    ({"text": 42}, 422, "must be a string"),
    ({"text": ["a list"]}, 422, "must be a string"),
    ({"text": "a", "texts": ["b"]}, 422, "exactly one input"),
    ({}, 422, "exactly one input"),
    ({"txt": "typo"}, 422, "unknown field 'txt'"),
    ({"text": "a", "model": "nope"}, 422, "not loaded"),
    ({"text": "a", "model": ["student"]}, 422, "model must be a string, got list"),
    ({"text": "a", "model": None}, 422, "model must be a string, got NoneType"),
    ({"text": {"nested": "object"}}, 422, "must be a string, got dict"),
    ({"texts": ["ok", 3.5]}, 422, "text 1 must be a string, got float"),
    ({"question": "who?", "context": "the sea"}, 422, "takes text"),
    (["a", "list"], 422, "JSON object"),
    ("just a string", 422, "JSON object"),
]


@pytest.mark.parametrize(("body", "status", "message"), BAD_REQUESTS)
def test_bad_json_shapes_get_4xx_json_errors(pair, body, status, message):
    _, client = pair
    response = client.post("/predict", json=body)
    assert response.status_code == status and message in response.json()["error"]


@pytest.mark.parametrize(
    ("content", "status", "message"),
    [
        (b"\xff\xfe not utf-8", 400, "not valid UTF-8"),
        (b'{"text": "caf\xe9"}', 400, "not valid UTF-8"),
        (b'{"text": "unterminated', 400, "not valid JSON"),
        (b"", 400, "empty body"),
        (b"[" * 2000 + b"]" * 2000, 400, "nested too deeply"),
        (b'{"text": "\\ud800 is a lone surrogate"}', 422, "not valid Unicode"),
        (b'{"text": "' + b"a" * 5000 + b'"}', 413, "4096-byte limit"),
        (b'{"text": ' + b"1" * 4400 + b"}", 413, "4096-byte limit"),
        (b"{'text': 'single quotes'}", 400, "not valid JSON"),
        (b'{"text": "a",}', 400, "not valid JSON"),
        (b"NaN", 422, "JSON object"),
    ],
)
def test_bad_bodies_get_4xx_json_errors(pair, content, status, message):
    _, client = pair
    response = client.post("/predict", content=content, headers={"content-type": "application/json"})
    assert response.status_code == status and message in response.json()["error"]


def test_an_integer_too_long_to_convert_is_a_400_not_a_500(ship_models):
    with _client(ship_models, "student") as client:  # the default 1 MiB body limit lets 5,000 digits through
        response = client.post("/predict", content=b'{"text": ' + b"7" * 5000 + b"}")
    assert response.status_code == 400 and "not usable JSON" in response.json()["error"]
    assert "\n" not in response.json()["error"]


def test_oversized_streamed_body_without_length_is_refused(pair):
    _, client = pair

    def chunks():
        for _ in range(10):
            yield b"a" * 1000

    response = client.post("/predict", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413 and "limit" in response.json()["error"]


def test_unknown_routes_and_methods_are_json_errors(pair):
    _, client = pair
    assert client.get("/nope").status_code == 404 and "error" in client.get("/nope").json()
    response = client.get("/predict")
    assert response.status_code == 405 and "error" in response.json()


def test_micro_batching_merges_concurrent_requests(pair):
    app, client = pair
    batcher, predictor = app.state.batchers["student"], app.state.predictors["student"]
    started = threading.Event()
    real_predict = batcher.predict

    def slow_predict(items):
        started.set()
        time.sleep(0.2)  # while the first batch computes, the other requests queue up and merge
        return real_predict(items)

    batcher.predict = slow_predict
    before = len(batcher.batch_sizes)
    try:
        with concurrent.futures.ThreadPoolExecutor(12) as pool:
            first = pool.submit(client.post, "/predict", json={"text": "the first one"})
            assert started.wait(10)
            rest = [pool.submit(client.post, "/predict", json={"text": f"the sea {i}"}) for i in range(11)]
            responses = [first.result(), *(f.result() for f in rest)]
    finally:
        batcher.predict = real_predict
    assert all(r.status_code == 200 for r in responses)
    sizes = list(batcher.batch_sizes)[before:]
    assert sum(sizes) == 12 and max(sizes) > 1, sizes
    assert client.get("/info").json()["models"]["student"]["batching"]["largest_batch"] >= max(sizes)
    assert predictor.kind == "classification"


def test_32_concurrent_clients_mixing_good_and_bad_requests_get_no_5xx(pair):
    _, client = pair
    bodies = [
        {"json": {"text": "a good day at sea"}},
        {"json": {"texts": ["the ship", "the whale"], "model": "teacher"}},
        {"json": {"text": ""}},
        {"content": b"\xff\xfe"},
        {"json": {"text": "x" * 500}},
        {"json": [1, 2]},
        {"content": b'{"text": '},
        {"json": {"text": "she said no", "model": "teacher"}},
    ]
    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        responses = list(pool.map(lambda i: client.post("/predict", **bodies[i % len(bodies)]), range(128)))
    statuses = [r.status_code for r in responses]
    assert not [s for s in statuses if s >= 500]
    assert statuses.count(200) == 128 // len(bodies) * 3 and all(r.json() for r in responses)


def test_internal_failure_is_a_json_500_and_the_server_keeps_serving(pair):
    app, client = pair
    batcher = app.state.batchers["student"]
    real_predict = batcher.predict

    def broken(items):
        raise RuntimeError("boom")

    batcher.predict = broken
    try:
        response = client.post("/predict", json={"text": "the sea"})
    finally:
        batcher.predict = real_predict
    assert response.status_code == 500 and response.json() == {"error": "internal error: RuntimeError"}
    assert client.post("/predict", json={"text": "the sea"}).status_code == 200


def _client(ship_models, name: str, backend: str = "torch") -> TestClient:
    predictor = load_predictor("student", str(ship_models[name]), backend, threads=1)
    return TestClient(create_app(ServeConfig("unused"), {"student": predictor}), raise_server_exceptions=False)


def test_embedding_model_returns_unit_vectors(ship_models):
    with _client(ship_models, "embedding") as client:
        body = client.post("/predict", json={"texts": ["the sea", "the ship"]}).json()
    assert body["kind"] == "embedding"
    for prediction in body["predictions"]:
        assert prediction["dim"] == 32 and sum(x * x for x in prediction["embedding"]) == pytest.approx(1.0, abs=1e-4)


SENTENCES = ["the sea", "she said that the old ship had a great heart and the house was good by the sea", "a whale"]


@pytest.mark.parametrize(
    ("pooling", "normalize", "max_seq_length"), [(("cls",), False, 8), (("mean",), True, None)], ids=["cls", "mean"]
)
def test_served_embedding_is_the_one_evaluate_scores(ship_models, tmp_path, pooling, normalize, max_seq_length):
    """A sentence-transformers folder is served with its own pooling, normalisation and length, as `evaluate
    --task sts` encodes it (the CLS model is unnormalised and truncates at 8 tokens, below the server's 128)."""
    import shutil

    from distilkit.embeddings import load_sentence_model
    from distilkit.models.sentence import SentenceSpec, read_sentence_spec, write_sentence_files

    folder = shutil.copytree(ship_models["embedding"], tmp_path / "st")
    write_sentence_files(folder, SentenceSpec(pooling, normalize, max_seq_length), dimension=32, max_positions=64)
    assert read_sentence_spec(folder).pooling == pooling
    expected = load_sentence_model(folder).encode(SENTENCES)  # what evaluate --task sts scores
    predictor = load_predictor("student", str(folder), "torch", threads=1)
    with TestClient(create_app(ServeConfig("unused"), {"student": predictor})) as client:
        body = client.post("/predict", json={"texts": SENTENCES}).json()
        info = client.get("/info").json()["models"]["student"]
    served = np.array([prediction["embedding"] for prediction in body["predictions"]])
    assert served.shape == expected.shape == (3, 32)
    np.testing.assert_allclose(served, expected, atol=2e-5)
    assert info["pooling"] == list(pooling) and info["normalize"] is normalize
    norms = np.linalg.norm(served, axis=1)
    assert np.allclose(norms, 1.0, atol=1e-4) if normalize else not np.allclose(norms, 1.0, atol=1e-2)
    if pooling == ("cls",):  # mean + normalise, what the server used to answer for every model, is visibly off
        assert not np.allclose(served, load_sentence_model(ship_models["embedding"]).encode(SENTENCES), atol=1e-3)


def test_token_classification_returns_entities_with_spans(ship_models):
    text = "the captain saw the whale"
    with _client(ship_models, "ner") as client:
        (prediction,) = client.post("/predict", json={"text": text}).json()["predictions"]
    for entity in prediction["entities"]:
        assert text[entity["start"] : entity["end"]] == entity["text"] and entity["label"] in ("PER", "LOC")


def test_qa_model_answers_from_the_context(ship_models):
    context = "the captain sat in the old house by the sea"
    with _client(ship_models, "qa") as client:
        body = client.post("/predict", json={"question": "where was the captain", "context": context}).json()
        (answer,) = body["predictions"]
        assert answer["answer"] == "" or answer["answer"] in context
        listed = client.post("/predict", json={"inputs": [{"question": "who", "context": context}] * 2}).json()
        assert len(listed["predictions"]) == 2
        assert client.post("/predict", json={"text": "no question"}).status_code == 422
        assert client.post("/predict", json={"inputs": [{"question": "who"}]}).status_code == 422
        long_question = client.post("/predict", json={"question": "the " * 300, "context": context})
        assert long_question.status_code == 422 and "question has 300 tokens" in long_question.json()["error"]


def test_config_collects_every_problem_on_one_line():
    with pytest.raises(ConfigError) as raised:
        ServeConfig("s", backend="tensorrt", port=70000, max_chars=0, max_batch=-2, max_wait_ms=-1)
    message = str(raised.value)
    assert "--backend must be one of auto, torch, onnx, onnx-int8" in message and "--port" in message
    assert "--max-chars must be ≥ 1, got 0" in message and "--max-batch must be ≥ 1, got -2" in message
    assert "--max-wait-ms must be ≥ 0" in message and "\n" not in message
    for bad in (float("nan"), float("inf")):
        with pytest.raises(ConfigError, match="--max-wait-ms"):
            ServeConfig("s", max_wait_ms=bad)
    assert ServeConfig("s", max_wait_ms=0).max_wait_ms == 0  # 0 is allowed: never wait for company


def _forward_rows(predictor) -> list[int]:
    """Spy on the predictor's forwards: the row count of each one, appended as they run."""
    rows: list[int] = []
    forward = predictor._forward

    def counting(features):
        rows.append(len(features["input_ids"]))
        return forward(features)

    predictor._forward = counting
    return rows


def test_max_batch_bounds_every_forward(ship_models):
    config = ServeConfig(str(ship_models["student"]), backend="torch", max_batch=4, max_wait_ms=50, threads=1)
    app = create_app(config)
    rows = _forward_rows(app.state.predictors["student"])
    texts = [f"the sea {i}" for i in range(10)]
    with TestClient(app) as client, concurrent.futures.ThreadPoolExecutor(6) as pool:
        many = client.post("/predict", json={"texts": texts}).json()["predictions"]
        alone = [client.post("/predict", json={"text": text}).json()["predictions"][0] for text in texts[:3]]
        concurrent_ = list(pool.map(lambda t: client.post("/predict", json={"texts": [t, t]}), texts))
    assert len(many) == 10 and all(r.status_code == 200 for r in concurrent_)
    assert rows and max(rows) <= 4 and sum(rows) == 10 + 3 + 20, rows
    for got, want in zip(many[:3], alone, strict=True):  # split across forwards, the answers stay the same
        assert got["probabilities"] == pytest.approx(want["probabilities"], abs=1e-5)
    assert client.get("/info").json()["limits"]["max_batch"] == 4


def test_max_batch_bounds_qa_windows_too(ship_models):
    """One long context is several 384-token windows (rows); a forward still sees at most max_batch of them."""
    predictor = load_predictor("student", str(ship_models["qa"]), "torch", threads=1, max_rows=2)
    rows = _forward_rows(predictor)
    context = " ".join(["the captain sat in the old house by the sea"] * 60)
    (answer,) = predictor.predict([("where was the captain", context)])
    assert len(rows) >= 2 and max(rows) <= 2 and (answer["answer"] == "" or answer["answer"] in context)


def test_openapi_json_and_docs_page(pair):
    _, client = pair
    spec = client.get("/openapi.json").json()
    assert set(spec["paths"]) == {"/health", "/info", "/predict"}  # not the page, the static files or /docs
    predict = spec["paths"]["/predict"]["post"]
    body = predict["requestBody"]["content"]["application/json"]
    assert {"text", "texts", "question", "context", "inputs", "model"} == set(body["schema"]["properties"])
    assert body["examples"]["one text"]["value"] == {"text": "A gripping, beautifully acted film."}
    assert {"200", "400", "413", "422", "500"} <= set(predict["responses"])
    page = client.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<script src="/static/docs.js">' in page.text and "cdn.jsdelivr.net" not in page.text
    script = client.get("/static/docs.js").text
    assert "https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/" in script and "/openapi.json" in script


@pytest.mark.slow
def test_docs_page_offline_lists_the_endpoints_in_a_browser(pair):
    """With the CDN unreachable, /docs lists the endpoints from /openapi.json instead of staying blank."""
    import shutil

    pytest.importorskip("selenium", reason='needs selenium: pip install "distilkit[browser-test]"')
    chromium, driver_path = shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")
    if not (chromium and driver_path):
        pytest.skip("needs chromium and chromedriver: apt-get install chromium chromium-driver")
    import uvicorn
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    app = create_app(pair[0].state.config, pair[0].state.predictors)  # its own batchers, on uvicorn's loop
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--host-resolver-rules=MAP cdn.jsdelivr.net ~NOTFOUND"):  # fmt: skip
        options.add_argument(argument)
    browser = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    try:
        for _ in range(200):
            if server.started:
                break
            time.sleep(0.05)
        port = server.servers[0].sockets[0].getsockname()[1]
        browser.get(f"http://127.0.0.1:{port}/docs")
        body = browser.find_element(By.TAG_NAME, "body")
        WebDriverWait(browser, 30).until(lambda d: body.get_attribute("data-docs") != "loading")
        assert body.get_attribute("data-docs") == "offline"
        text = browser.find_element(By.ID, "offline").text
        assert "POST /predict" in text and "GET /info" in text and "cdn.jsdelivr.net" in text
    finally:
        browser.quit()
        server.should_exit = True
        thread.join(timeout=10)
