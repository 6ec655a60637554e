"""The push sender inside the server: started and stopped with it, reached as
services.pusher, sending what is committed to the server's own store."""
import pytest

from dmwsi.jobs import outbox
from dmwsi.push.sender import DEFAULTS, PushSender

from .conftest import FAST, delivered, make_job, wait_until


@pytest.fixture
def server(start_server):
    return start_server(push=dict(FAST, poll_interval=60.0))   # only kick() sends promptly


def test_server_runs_a_push_sender_with_its_push_settings(server):
    pusher = server.services.pusher
    assert isinstance(pusher, PushSender) and pusher.running and pusher.store is server.store
    assert pusher.settings == {**DEFAULTS, **FAST, "poll_interval": 60.0}


def test_results_committed_on_the_server_store_reach_the_consumer(server, consumer):
    store = server.store
    job = make_job(store, consumer.url, devices=["d1", "d2"], mode="each")
    with store.transaction():       # what the job code does when a device's result arrives
        store.set_target_state(job.job_id, "d1", "succeeded", status_code=200)
        first = outbox.device_result_pushed(store, job, {"deviceId": "d1", "state": "succeeded",
                                                         "statusCode": 200})
    with pytest.raises(RuntimeError), store.transaction():
        store.set_target_state(job.job_id, "d2", "failed")
        outbox.device_result_pushed(store, job, {"deviceId": "d2", "state": "failed"})
        raise RuntimeError("session crashed before commit")
    server.services.pusher.kick()   # from the test thread: kick() is thread-safe
    wait_until(lambda: delivered(store, first), what="delivery")
    assert [(p["operation"], p["sequence"], p["result"]["deviceId"]) for p in consumer.pushes] == [
        ("DeviceResult", 1, "d1")]
    # The rolled-back result left no push: the next one takes sequence 2.
    with store.transaction():
        store.set_target_state(job.job_id, "d2", "failed")
        ids = [outbox.device_result_pushed(store, job, {"deviceId": "d2", "state": "failed"})]
        ids += outbox.job_completed(store, job)
    server.services.pusher.kick()
    wait_until(lambda: delivered(store, *ids), what="delivery")
    assert [(p["operation"], p["sequence"]) for p in consumer.pushes] == [
        ("DeviceResult", 1), ("DeviceResult", 2), ("JobCompleted", 3)]
    assert len(consumer.attempts) == 3


def test_stopping_the_server_lets_in_flight_pushes_finish(running_reactor, tmp_path, consumer):
    from twisted.internet.threads import blockingCallFromThread

    from dmwsi.config import load_config
    from dmwsi.host import Server
    from dmwsi.store import open_store

    config = load_config(overrides={
        "server": {"host": "127.0.0.1", "http_port": 0, "https_port": -1, "data_dir": str(tmp_path / "data")},
        "push": FAST}, environ={})
    srv = Server(config, reactor=running_reactor)
    blockingCallFromThread(running_reactor, srv.start)
    pusher, store = srv.services.pusher, srv.services.store
    consumer.delay = 0.3
    job = make_job(store, consumer.url, devices=["d1"])
    with store.transaction():
        store.set_target_state(job.job_id, "d1", "succeeded")
        delivery_id = outbox.device_result_pushed(store, job, {"deviceId": "d1", "state": "succeeded"})
    pusher.kick()
    wait_until(lambda: consumer.attempts, what="the push to be in flight")
    blockingCallFromThread(running_reactor, srv.stop)
    assert not pusher.running and pusher.in_flight == {}
    reopened = open_store(config.data_path(config["store"]["path"]))
    try:
        assert reopened.get_push(delivery_id).delivered_at is not None   # recorded before the store closed
    finally:
        reopened.close()
