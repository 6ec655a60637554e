"""Issue 8 item 5 end to end: a stranger posting unauthenticated package 1s
that name a real device's id, every 0.2 s, no longer holds the device's slot;
the simulated device, woken by package 0, runs its job at once."""
import http.client
import threading
import time
from urllib.parse import urlsplit

from dmwsi.dm.message import Alert, Message, SyncHdr, parse, serialize


def flood(dm_url, device_id, stop, answers):
    parts = urlsplit(dm_url)
    body = serialize(Message(header=SyncHdr(session_id="1", msg_id="1", target=dm_url, source=device_id),
                             body=[Alert(cmd_id="1", data=1201)], final=True))
    while not stop.is_set():
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
        conn.request("POST", parts.path, body=body, headers={"Content-Type": "application/vnd.syncml.dm+xml"})
        response = conn.getresponse()
        data = response.read()
        answers.append(parse(data).body[0].code if response.status == 200 else response.status)
        conn.close()
        stop.wait(0.2)


def test_unauthenticated_flood_naming_a_device_does_not_delay_its_job(make_fleet):
    h = make_fleet(1, dm={"notifier": "http", "wakeup_interval": 0.2})
    h.register()
    device_id = h.ids[0]
    stop, answers = threading.Event(), []
    attacker = threading.Thread(target=flood, args=(h.server.url("http", "dm"), device_id, stop, answers))
    attacker.start()
    try:
        while len(answers) < 3:          # the flood is on before the job exists
            time.sleep(0.05)
        started = time.monotonic()
        job = h.submit([{"action": "Get", "uri": "./DevInfo/Mod"}])
        counts = h.wait_job(job.job_id, timeout=20)
        elapsed = time.monotonic() - started
    finally:
        stop.set()
        attacker.join()
    assert counts["succeeded"] == 1 and elapsed < 10
    assert set(answers) <= {407, 429} and 407 in answers      # every stranger got a challenge or a refusal
    values = {i.uri: i.value for i in h.results(job.job_id)[device_id].items if i.format is not None}
    assert values == {"./DevInfo/Mod": "P1"}
