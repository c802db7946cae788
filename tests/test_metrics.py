"""GET /metrics (Prometheus' text format) and GET /api/stats: the same totals
from every control-plane process, read from Redis; the backlog as it is now;
behind the token, which CALLPLANE_METRICS_TOKEN opens for /metrics alone."""

from __future__ import annotations

import requests
from prometheus_client.parser import text_string_to_metric_families

from controlplane.local_cluster import wait_until
from tests.cluster import cluster_of
from tests.conftest import control_plane_with_token
from tests.workflows import recovery

TOKEN, SCRAPER = "token-for-the-api", "token-for-the-scraper"


def scrape(url: str, **headers: str) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics, by name and labels."""
    answer = requests.get(f"{url}/metrics", headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Content-Type"].startswith("text/plain; version=")
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(answer.text)
            for sample in family.samples}


def test_metrics_count_calls_across_server_processes_and_show_the_backlog(tmp_path):
    log = str(tmp_path / "executions")
    with cluster_of(tmp_path, recovery.runner, server_options=("--workers", "2",
                                                                "--server", "gunicorn")) as cluster:
        cluster.worker()
        echoes = [recovery.echo.submit(i) for i in range(20)]
        assert [handle.result(timeout=30) for handle in echoes] == list(range(20))
        assert recovery.calls_flaky.submit(log, 2).result(timeout=30) == 3
        failed = recovery.raises_unlisted.submit(str(tmp_path / "unlisted"))
        later = recovery.echo.options(delay=600).submit("later")
        failed.exception(timeout=30)

        expected = {
            ("callplane_calls_created_total", (("stage", "echo"),)): 21,
            ("callplane_calls_finished_total", (("stage", "raises_unlisted"), ("status", "failed"))): 1,
            ("callplane_calls_finished_total", (("stage", "calls_flaky"), ("status", "succeeded"))): 1,
            ("callplane_calls_finished_total", (("stage", "echo"), ("status", "succeeded"))): 20,
            # flaky ran in its parent's slot: the worker reported its creation
            ("callplane_calls_created_total", (("stage", "flaky"),)): 1,
            ("callplane_retries_total", ()): 2,
            ("callplane_run_seconds_count", (("stage", "echo"),)): 20,
            ("callplane_queue_wait_seconds_bucket", (("le", "+Inf"), ("stage", "echo"))): 20,
        }

        def counted() -> dict:
            """The samples once every process added what it counted (each does so
            every second, and the two may each have recorded some of the calls)."""
            samples = scrape(cluster.server_url)
            return samples if all(samples.get(key) == n for key, n in expected.items()) else {}

        try:
            wait_until(counted, "every process's counts added", timeout=10)
        finally:
            samples = scrape(cluster.server_url)
            assert {key: samples.get(key) for key in expected} == expected
        assert samples[("callplane_calls_delayed", ())] == 1
        assert samples[("callplane_workers_alive", ())] == 1

        requests.post(f"{cluster.server_url}/api/call/{later.id}/cancel", timeout=10)
        cluster.stop_workers()
        queued = [recovery.echo.submit(i) for i in range(3)]
        seen = []

        def backlog_of_three() -> bool:
            seen.append(requests.get(f"{cluster.server_url}/api/stats", timeout=10).json())
            return seen[-1]["backlog"] == 3

        try:
            wait_until(backlog_of_three, "three calls on the queue")
        except RuntimeError:
            raise AssertionError(f"the stats said {seen[-1]}") from None
        stats = seen[-1]
        (queue,) = [q for q in stats["queues"] if q["depth"]]
        assert queue["depth"] == 3 and queue["oldest_age_seconds"] >= 0
        assert (stats["delayed"], stats["workers_alive"]) == (0, 0)
        assert len(stats["last_hour"]) == 60
        assert sum(minute["finished"] for minute in stats["last_hour"]) >= 23
        busiest = max(stats["last_hour"], key=lambda minute: minute["finished"])
        assert busiest["p50_seconds"] > 0 and busiest["p95_seconds"] >= busiest["p50_seconds"]
        wait_until(lambda: scrape(cluster.server_url).get(("callplane_calls_finished_total", (
            ("stage", "echo"), ("status", "cancelled")))) == 1, "the cancelled call counted")
        assert len(queued) == 3


def test_the_metrics_token_opens_metrics_alone(env, tmp_path):
    with control_plane_with_token(env, TOKEN, tmp_path,
                                  CALLPLANE_METRICS_TOKEN=SCRAPER) as url:
        assert scrape(url, Authorization=f"Bearer {SCRAPER}")
        assert scrape(url, Authorization=f"Bearer {TOKEN}")
        refused = requests.get(f"{url}/metrics", timeout=10)
        assert refused.status_code == 401 and "CALLPLANE_METRICS_TOKEN" in refused.json()["message"]
        assert SCRAPER not in refused.text
        for path in ("/api/stats", "/api/runs"):
            answer = requests.get(url + path, headers={"Authorization": f"Bearer {SCRAPER}"},
                                  timeout=10)
            assert answer.status_code == 401, path


def test_a_metrics_token_alone_guards_metrics_alone(env, tmp_path):
    with control_plane_with_token(env, None, tmp_path, CALLPLANE_METRICS_TOKEN=SCRAPER) as url:
        assert requests.get(f"{url}/metrics", timeout=10).status_code == 401
        assert scrape(url, Authorization=f"Bearer {SCRAPER}")
        assert requests.get(f"{url}/api/stats", timeout=10).status_code == 200


def test_a_call_finished_over_http_is_counted(tmp_path):
    """POST /api/call/<id>/finish, a worker driving its calls over HTTP, counts the
    finish like the recorder's."""
    with cluster_of(tmp_path, recovery.runner) as cluster:
        url = cluster.server_url
        call = requests.post(f"{url}/api/call", json={"stage": "by_hand"}, timeout=10).json()
        requests.post(f"{url}/api/call/{call['id']}/start", json={"worker": "hand"},
                      timeout=10).raise_for_status()
        requests.post(f"{url}/api/call/{call['id']}/finish", json={"status": "succeeded"},
                      timeout=10).raise_for_status()
        finished = ("callplane_calls_finished_total", (("stage", "by_hand"), ("status", "succeeded")))
        wait_until(lambda: scrape(url).get(finished) == 1, "the finish counted", timeout=10)
