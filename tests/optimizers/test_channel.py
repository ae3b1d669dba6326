"""The EventChannel contract: ordering, close/drain, poisoning, answers, threads and loops."""

from __future__ import annotations

import asyncio
import pickle
import threading

import pytest

from optimizers import (
    ChannelClosedError,
    ChannelPoisonedError,
    Controllable,
    ControllableInjection,
    ControllableNoInjection,
    ControllablePostCallEvent,
    ControllablePreCallEvent,
    EnvelopeAlreadyAnsweredError,
    EventChannel,
    EventResponse,
    InvalidResponseError,
    ObservableEvent,
    RunEndEvent,
    RunEndResponse,
    RunStartEvent,
    Trajectory,
)
from tests.optimizers.conftest import LoopThread, arun

pytestmark = pytest.mark.timeout(60)


def pre(c: Controllable, request: object = "hi") -> ControllablePreCallEvent:
    return ControllablePreCallEvent(controllable=c, request=request)


def inject(envelope, value: object = "x") -> None:
    envelope.respond(ControllableInjection(event=envelope.event, controllable=envelope.event.controllable, value=value))


async def echo_consumer(channel: EventChannel) -> list[object]:
    """Answers every pre-call with its own request (so the sender can check pairing)."""
    seen = []
    async for envelope in channel:
        seen.append(envelope.event.request)
        inject(envelope, envelope.event.request)
    return seen


def test_fifo_order_and_pairing(user_input):
    async def main():
        channel = EventChannel()
        consumer = asyncio.create_task(echo_consumer(channel))
        answers = [await channel.send(pre(user_input, i), timeout=5) for i in range(20)]
        channel.close()
        seen = await consumer
        return answers, seen

    answers, seen = arun(main)
    assert [a.value for a in answers] == list(range(20))
    assert seen == list(range(20))


def test_queued_events_are_received_in_send_order(user_input):
    async def main():
        channel = EventChannel()
        senders = [asyncio.create_task(channel.send(pre(user_input, i), timeout=5)) for i in range(10)]
        await asyncio.sleep(0)  # all ten are queued before anyone receives
        consumer = asyncio.create_task(echo_consumer(channel))
        answers = await asyncio.gather(*senders)
        channel.close()
        return [a.value for a in answers], await consumer

    values, seen = arun(main)
    assert seen == list(range(10))
    assert values == list(range(10))


def test_close_drains_then_stops(user_input):
    async def main():
        channel = EventChannel()
        senders = [asyncio.create_task(channel.send(pre(user_input, i), timeout=5)) for i in range(3)]
        await asyncio.sleep(0)
        channel.close()
        with pytest.raises(ChannelClosedError):
            await channel.send(pre(user_input), timeout=5)
        seen = await echo_consumer(channel)  # drains the three, then iteration ends
        assert [a.value for a in await asyncio.gather(*senders)] == [0, 1, 2]
        with pytest.raises(ChannelClosedError):
            await channel.receive(timeout=1)
        return seen

    assert arun(main) == [0, 1, 2]


def test_close_wakes_a_waiting_receiver():
    async def main():
        channel = EventChannel()
        consumer = asyncio.create_task(echo_consumer(channel))
        await asyncio.sleep(0.01)
        channel.close()
        return await asyncio.wait_for(consumer, 2)

    assert arun(main) == []


def test_set_error_poisons_pending_and_future_sends_and_stops_receivers(user_input):
    async def main():
        channel = EventChannel()
        delivered = asyncio.create_task(channel.send(pre(user_input, "delivered"), timeout=5))
        await asyncio.sleep(0)
        held = await channel.receive(timeout=1)  # received, never answered
        queued = asyncio.create_task(channel.send(pre(user_input, "queued"), timeout=5))
        await asyncio.sleep(0)
        boom = RuntimeError("optimizer crashed")
        channel.set_error(boom)
        channel.set_error(ValueError("second error is ignored"))
        for task in (delivered, queued):
            with pytest.raises(ChannelPoisonedError) as info:
                await task
            assert info.value.__cause__ is boom
        with pytest.raises(ChannelPoisonedError):
            await channel.send(pre(user_input), timeout=1)
        assert [e async for e in channel] == []
        held.respond(ControllableNoInjection(event=held.event))  # late answer: silent no-op
        assert channel.error is boom and channel.closed and channel.pending == 0

    arun(main)


def test_set_error_wakes_waiting_receiver():
    async def main():
        channel = EventChannel()
        consumer = asyncio.create_task(echo_consumer(channel))
        await asyncio.sleep(0.01)
        channel.set_error(RuntimeError("controller failed"))
        return await asyncio.wait_for(consumer, 2)

    assert arun(main) == []


def test_double_respond_and_respond_after_reject_raise(user_input):
    async def main():
        channel = EventChannel()
        sender = asyncio.create_task(channel.send(pre(user_input), timeout=5))
        envelope = await channel.receive(timeout=1)
        inject(envelope, "first")
        with pytest.raises(EnvelopeAlreadyAnsweredError):
            inject(envelope, "second")
        with pytest.raises(EnvelopeAlreadyAnsweredError):
            envelope.reject(RuntimeError("too late"))
        assert (await sender).value == "first"

        sender = asyncio.create_task(channel.send(pre(user_input), timeout=5))
        envelope = await channel.receive(timeout=1)
        envelope.reject(KeyError("nope"))
        with pytest.raises(EnvelopeAlreadyAnsweredError):
            inject(envelope)
        with pytest.raises(KeyError):
            await sender

    arun(main)


def test_reject_delivers_the_exception_and_wraps_cancellation(user_input):
    async def main():
        channel = EventChannel()
        sender = asyncio.create_task(channel.send(pre(user_input), timeout=5))
        envelope = await channel.receive(timeout=1)
        error = ValueError("bad request")
        envelope.reject(error)
        with pytest.raises(ValueError) as info:
            await sender
        assert info.value is error

        sender = asyncio.create_task(channel.send(pre(user_input), timeout=5))
        envelope = await channel.receive(timeout=1)
        envelope.reject(asyncio.CancelledError())
        with pytest.raises(Exception) as info:  # not a CancelledError: the sender is not cancelled
            await sender
        assert isinstance(info.value.__cause__, asyncio.CancelledError)

    arun(main)


@pytest.mark.parametrize(
    "make_event, make_response",
    [
        # a RunEndResponse to a pre-call
        (lambda c: pre(c), lambda e, c: RunEndResponse(event=e, done=True)),
        # an injection to a RunStartEvent / ObservableEvent / RunEndEvent
        (lambda c: RunStartEvent(trajectory=Trajectory(goal="g")), lambda e, c: ControllableInjection(event=e, controllable=c, value=1)),
        (lambda c: RunEndEvent(evaluation=None), lambda e, c: EventResponse(event=e)),
        (lambda c: RunEndEvent(evaluation=None), lambda e, c: ControllableNoInjection(event=e)),
        # not a response at all
        (lambda c: pre(c), lambda e, c: "an attack string"),
        # a response to another event
        (lambda c: pre(c), lambda e, c: ControllableNoInjection(event=pre(c))),
        # an injection into another controllable than the event's
        (lambda c: pre(c), lambda e, c: ControllableInjection(event=e, controllable=Controllable(name="other", domain="system"), value=1)),
        (lambda c: ControllablePostCallEvent(controllable=c, request=1, response=2), lambda e, c: RunEndResponse(event=e)),
    ],
    ids=["runend-to-precall", "injection-to-runstart", "plain-to-runend", "noinjection-to-runend",
         "not-a-response", "other-event", "other-controllable", "runend-to-postcall"],
)
def test_wrong_response_is_rejected_to_both_sides(user_input, make_event, make_response):
    async def main():
        channel = EventChannel()
        event = make_event(user_input)
        sender = asyncio.create_task(channel.send(event, timeout=5))
        envelope = await channel.receive(timeout=1)
        with pytest.raises(InvalidResponseError):
            envelope.respond(make_response(event, user_input))
        with pytest.raises(InvalidResponseError):
            await sender
        assert envelope.answered and channel.pending == 0

    arun(main)


@pytest.mark.parametrize(
    "make_event, make_response",
    [
        (lambda c: pre(c), lambda e, c: ControllableNoInjection(event=e)),
        (lambda c: pre(c), lambda e, c: EventResponse(event=e)),  # plain response = no injection
        (lambda c: ControllablePostCallEvent(controllable=c, request=1, response=2), lambda e, c: ControllableInjection(event=e, controllable=c, value=3)),
        (lambda c: RunEndEvent(evaluation=None), lambda e, c: RunEndResponse(event=e, done=True)),
        (lambda c: RunStartEvent(trajectory=Trajectory(goal="g")), lambda e, c: EventResponse(event=e)),
    ],
)
def test_valid_responses_are_delivered(user_input, make_event, make_response):
    async def main():
        channel = EventChannel()
        event = make_event(user_input)
        sender = asyncio.create_task(channel.send(event, timeout=5))
        envelope = await channel.receive(timeout=1)
        response = make_response(event, user_input)
        envelope.respond(response)
        assert await sender is response

    arun(main)


def test_only_events_travel():
    async def main():
        with pytest.raises(TypeError):
            await EventChannel().send("not an event", timeout=1)  # type: ignore[arg-type]  # not an event, on purpose

    arun(main)


def test_respond_from_another_thread(user_input):
    async def main():
        channel = EventChannel()
        sender = asyncio.create_task(channel.send(pre(user_input, "q"), timeout=5))
        envelope = await channel.receive(timeout=1)
        worker = threading.Thread(target=inject, args=(envelope, "from a thread"))
        worker.start()
        answer = await sender
        worker.join(5)
        return answer.value

    assert arun(main) == "from a thread"


@pytest.mark.parametrize("optimizer_side", ["receiver-in-thread", "sender-in-thread"])
def test_cross_loop_send_and_receive(user_input, optimizer_side):
    """Two threads, each under its own asyncio.run(): what Prefect's thread pool does."""
    channel = EventChannel()

    async def sender():
        answers = []
        for i in range(50):
            answers.append((await channel.send(pre(user_input, i), timeout=5)).value)
        channel.close()
        return answers

    if optimizer_side == "receiver-in-thread":
        receiver_thread = LoopThread(lambda: echo_consumer(channel))
        answers = arun(sender)
        seen = receiver_thread.join()
    else:
        sender_thread = LoopThread(sender)
        seen = arun(lambda: echo_consumer(channel))
        answers = sender_thread.join()
    assert answers == list(range(50)) and seen == list(range(50))


def test_many_sender_threads_each_get_their_own_answers(user_input):
    channel = EventChannel()
    consumer = LoopThread(lambda: echo_consumer(channel))

    async def send_batch(tag):
        return [(await channel.send(pre(user_input, (tag, i)), timeout=10)).value for i in range(40)]

    senders = [LoopThread(lambda tag=tag: send_batch(tag)) for tag in range(4)]
    results = [s.join() for s in senders]
    channel.close()
    seen = consumer.join()
    for tag, values in enumerate(results):
        assert values == [(tag, i) for i in range(40)]
    assert len(seen) == 160
    for tag in range(4):  # per-sender order is preserved
        assert [i for t, i in seen if t == tag] == list(range(40))


def test_send_timeout_withdraws_a_queued_event(user_input):
    async def main():
        channel = EventChannel()
        with pytest.raises(TimeoutError):
            await channel.send(pre(user_input, "too slow"), timeout=0.05)
        assert channel.pending == 0
        consumer = asyncio.create_task(echo_consumer(channel))
        answer = await channel.send(pre(user_input, "next"), timeout=5)
        channel.close()
        return answer.value, await consumer

    value, seen = arun(main)
    assert value == "next" and seen == ["next"]  # the withdrawn event never reached the receiver


def test_late_respond_after_sender_timeout_is_a_no_op(user_input):
    async def main():
        channel = EventChannel()
        sender = asyncio.create_task(channel.send(pre(user_input), timeout=0.05))
        envelope = await channel.receive(timeout=1)
        with pytest.raises(TimeoutError):
            await sender
        inject(envelope)  # the sender is gone; nothing raises, nothing is delivered

    arun(main)


def test_cancelled_receiver_passes_its_wake_up_on(user_input):
    """A receiver woken for an event but cancelled before taking it must not lose the event."""

    async def main():
        channel = EventChannel()
        first = asyncio.create_task(channel.receive())
        second = asyncio.create_task(channel.receive())
        await asyncio.sleep(0.01)
        sender = asyncio.create_task(channel.send(pre(user_input, "kept"), timeout=5))
        await asyncio.sleep(0)  # the send wakes `first`...
        first.cancel()  # ...which is cancelled before it runs
        envelope = await asyncio.wait_for(second, 2)
        inject(envelope, envelope.event.request)
        return (await sender).value

    assert arun(main) == "kept"


def test_receive_timeout(user_input):
    async def main():
        channel = EventChannel()
        with pytest.raises(TimeoutError):
            await channel.receive(timeout=0.05)
        consumer = asyncio.create_task(echo_consumer(channel))  # the timed-out waiter left no trace
        answer = await channel.send(pre(user_input, 1), timeout=5)
        channel.close()
        await consumer
        return answer.value

    assert arun(main) == 1


def test_sync_variants_across_plain_threads(user_input):
    channel = EventChannel()

    def consumer():
        seen = []
        while True:
            try:
                envelope = channel.receive_sync(timeout=5)
            except ChannelClosedError:
                return seen
            seen.append(envelope.event.request)
            inject(envelope, envelope.event.request * 2)

    results: dict[str, object] = {}
    thread = threading.Thread(target=lambda: results.setdefault("seen", consumer()), daemon=True)
    thread.start()
    answers = [channel.send_sync(pre(user_input, i), timeout=5).value for i in range(5)]
    channel.close()
    thread.join(5)
    assert answers == [0, 2, 4, 6, 8] and results["seen"] == [0, 1, 2, 3, 4]
    with pytest.raises(TimeoutError):
        EventChannel().send_sync(pre(user_input), timeout=0.05)
    with pytest.raises(TimeoutError):
        EventChannel().receive_sync(timeout=0.05)


def test_sync_variants_refuse_a_running_loop(user_input):
    async def main():
        channel = EventChannel()
        with pytest.raises(RuntimeError, match="block the running event loop"):
            channel.send_sync(pre(user_input), timeout=1)
        with pytest.raises(RuntimeError, match="block the running event loop"):
            channel.receive_sync(timeout=1)
        assert channel.pending == 0

    arun(main)


def test_channel_and_envelope_refuse_pickling(user_input):
    import cloudpickle

    channel = EventChannel()
    for dump in (pickle.dumps, cloudpickle.dumps):
        with pytest.raises(TypeError, match="ThreadPoolTaskRunner"):
            dump(channel)
        with pytest.raises(TypeError, match="in-process"):
            dump({"params": [channel]})

    async def main():
        sender = asyncio.create_task(channel.send(pre(user_input), timeout=5))
        envelope = await channel.receive(timeout=1)
        with pytest.raises(TypeError, match="in-process"):
            pickle.dumps(envelope)
        inject(envelope)
        await sender

    arun(main)


def test_observable_event_round_trip(model_reply):
    async def main():
        channel = EventChannel()
        event = ObservableEvent(observable=model_reply, value="I cannot help with that")
        sender = asyncio.create_task(channel.send(event, timeout=5))
        envelope = await channel.receive(timeout=1)
        envelope.respond(EventResponse(event=envelope.event))
        return await sender

    assert arun(main).event.value == "I cannot help with that"
