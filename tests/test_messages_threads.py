"""Validation from several threads at once keeps each message's own faults."""

from concurrent.futures import ThreadPoolExecutor

import pytest

from gateway.messages import MessageError, Version, decode, encode

from support.messages_helpers import sample_requesting_message, sample_supplying_message


def test_concurrent_decoding_classifies_every_fault_correctly():
    bad_action = encode(sample_requesting_message(), Version.V2017).replace(b">Received<", b">Teleported<")
    bad_status = encode(sample_supplying_message(), Version.V2017).replace(b">Loaned<", b">Shipped<")
    expected = {bad_action: "UnsupportedActionType", bad_status: "UnrecognisedDataValue"}

    def classify(data: bytes) -> str:
        with pytest.raises(MessageError) as info:
            decode(data)
        return info.value.first.error_type.value

    work = [bad_action, bad_status] * 1500
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(classify, work))
    assert all(result == expected[data] for data, result in zip(work, results))
