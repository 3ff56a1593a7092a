"""Consumers of the dispatcher's channels (JSON lines, the history writer) let records
queue up asleep rather than waiting in receive(), which would wake them per record."""

import trio
import trio.testing

from trio_monitor._linger import close_channel, linger


class Steps(trio.abc.Instrument):
    def __init__(self, name: str) -> None:
        self.name, self.count = name, 0

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self.count += task.name == self.name


async def test_records_sent_one_by_one_wake_a_lingering_consumer_once(autojump_clock):
    send, receive = trio.open_memory_channel(100)
    taken = []

    async def consumer():
        taken.append(await receive.receive())
        await linger(receive, trio.current_time() + 1.0, 10)
        while True:
            try:
                taken.append(receive.receive_nowait())
            except trio.WouldBlock:
                break

    async with trio.open_nursery() as nursery:
        nursery.start_soon(consumer, name="consumer")
        await trio.testing.wait_all_tasks_blocked()
        send.send_nowait(0)
        await trio.testing.wait_all_tasks_blocked()  # it took the first, and lingers
        steps = Steps("consumer")
        trio.lowlevel.add_instrument(steps)
        for n in range(1, 6):
            send.send_nowait(n)
            await trio.testing.wait_all_tasks_blocked()
        assert steps.count == 0  # asleep through every send
        started = trio.current_time()
    assert steps.count == 1  # woken once, at the end of the linger
    assert trio.current_time() - started == 1.0
    assert taken == [0, 1, 2, 3, 4, 5]


async def test_a_full_batch_is_taken_at_once(autojump_clock):
    send, receive = trio.open_memory_channel(100)
    for n in range(10):
        send.send_nowait(n)
    started = trio.current_time()
    await linger(receive, started + 1.0, 10)
    assert trio.current_time() == started
    await linger(receive, started + 1.0, 11)
    assert trio.current_time() == started + 1.0


async def test_a_close_ends_the_linger_at_once(autojump_clock):
    send, receive = trio.open_memory_channel(100)
    taken = []

    async def consumer():
        async for record in receive:
            taken.append(record)
            await linger(receive, trio.current_time() + 1.0, 10)
            while True:
                try:
                    taken.append(receive.receive_nowait())
                except (trio.WouldBlock, trio.EndOfChannel):
                    break

    started = trio.current_time()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(consumer)
        send.send_nowait(1)
        await trio.testing.wait_all_tasks_blocked()  # lingering
        send.send_nowait(2)
        close_channel(send, receive)
    assert taken == [1, 2]
    assert trio.current_time() == started  # not a second later
