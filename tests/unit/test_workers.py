"""Workers without processes: the setting, and the merged metrics."""

import os

import pytest

from mg.observability.metrics import Metrics
from mg.settings import SettingsError, from_mapping
from mg.workers.exposition import merge
from tests.support.metrics import Scrape


def test_workers_default_to_one_and_auto_is_the_usable_cores() -> None:
    assert from_mapping({}, environ={}).server.workers == 1
    assert from_mapping({"server": {"workers": 3}}, environ={}).server.workers == 3
    auto = from_mapping({"server": {"workers": "auto"}}, environ={}).server.workers
    assert auto == len(os.sched_getaffinity(0))


@pytest.mark.parametrize("value", [0, -1, "many", 1.5, True])
def test_wrong_workers_are_refused(value: object) -> None:
    with pytest.raises(SettingsError, match=r"server\.workers"):
        from_mapping({"server": {"workers": value}}, environ={})


def test_merged_metrics_label_every_sample_with_its_worker() -> None:
    texts = {}
    for worker, requests in (("0", 2), ("1", 3)):
        metrics = Metrics(["ns"], ["main"])
        for _ in range(requests):
            metrics.observe_http("call", "POST", 200, 0.01)
        texts[worker] = metrics.render()
    scrape = Scrape(merge(texts).decode())
    assert (
        scrape.value(
            "mg_http_requests_total", route="call", method="POST", status="200", worker="1"
        )
        == 3
    )
    assert scrape.total("mg_http_requests_total", route="call") == 5
    assert scrape.total("mg_http_request_duration_seconds_count", worker="0") == 2
    assert scrape.value("mg_machines_failed", ns="ns", worker="0") == 0
    assert scrape.families["mg_http_requests"].type == "counter"
