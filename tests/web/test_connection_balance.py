"""The web workers' shared connection table and when a worker asks a client to reconnect (the real
gunicorn path, with two workers and 200 connections: tests/runtime/test_run_command.py)."""
from __future__ import annotations

import os
from types import SimpleNamespace

from appliance.web.connection_balance import CLOSE_EVERY_S, Balancer, ConnectionTable, over_share


def test_a_forked_worker_writes_the_table_the_master_and_its_siblings_read():
    table = ConnectionTable(slots=4)
    try:
        a, b = table.claim(set()), table.claim({0})
        assert (a, b) == (0, 1)
        pid = os.fork()
        if pid == 0:  # the worker: only its own slot
            table.listening(b)
            table.publish(b, 30)
            os._exit(0)
        os.waitpid(pid, 0)
        assert table.share() == 30.0           # slot 0 is not listening yet: not counted
        table.listening(a)
        table.publish(a, 10)
        assert table.share() == 20.0
        table.clear(b)                          # the master, when that worker exits
        assert table.share() == 10.0
        assert table.claim({0}) == 1            # the slot is free for the next worker
    finally:
        table.close()


def test_only_a_worker_more_than_one_over_its_share_sheds_a_connection():
    assert not over_share(21, 20.0) and over_share(22, 20.0)
    assert not over_share(21, 20.5) and over_share(22, 20.5)   # 41 cannot split evenly: 21/20 is even
    assert not over_share(0, 0.0)


def test_a_busy_worker_asks_one_client_at_a_time_to_reconnect():
    now = [100.0]
    table = ConnectionTable(slots=2)
    balancer = Balancer(table, clock=lambda: now[0])
    server = SimpleNamespace(WORKERS={})
    busy, idle = SimpleNamespace(nr_conns=25), SimpleNamespace(nr_conns=15)
    for worker in (busy, idle):
        balancer.pre_fork(server, worker)
        server.WORKERS[len(server.WORKERS) + 1] = worker
        balancer.worker_listening(worker)
    assert (busy.balance_slot, idle.balance_slot) == (0, 1)

    def request(worker):
        req = SimpleNamespace(must_close=False)
        balancer.pre_request(worker, req)
        return req.must_close

    table.publish(busy.balance_slot, 25)            # as its last request did
    assert request(idle) is False                    # 15 of 20
    assert request(busy) is True                     # 25 of 20
    assert request(busy) is False                    # not again within CLOSE_EVERY_S
    now[0] += CLOSE_EVERY_S + 0.001
    assert request(busy) is True
    busy.nr_conns, idle.nr_conns = 21, 19
    request(idle)
    now[0] += CLOSE_EVERY_S + 0.001
    assert request(busy) is False                    # even enough: nobody is asked
    balancer.child_exit(idle)                        # the other worker is gone: its slot is free
    assert table.share() == 21.0 and request(busy) is False
    table.close()
