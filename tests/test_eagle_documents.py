"""The fast reading of simple answers (documents.simple_fields) gives exactly what the full XML parse gives, and
steps aside for everything else, which the full parse then reads or refuses as before."""

from __future__ import annotations

import random

import pytest

from loggerapp.eagle.documents import parse_body, simple_fields
from loggerapp.eagle.errors import EagleError
from loggerapp.eagle.legacy import answer_fields

SAMPLE = (
    b"<InstantaneousDemand>\n  <DeviceMacId>0xd8d5b90000002506</DeviceMacId>\n  <MeterMacId>0x00078100001234ab"
    b"</MeterMacId>\n  <TimeStamp>0x1c91ec39</TimeStamp>\n  <Demand>0x0004d2</Demand>\n  <Multiplier>0x00000001"
    b"</Multiplier>\n  <Divisor>0x000003e8</Divisor>\n  <DigitsRight>0x03</DigitsRight>\n  <DigitsLeft>0x06"
    b"</DigitsLeft>\n  <SuppressLeadingZero>Y</SuppressLeadingZero>\n</InstantaneousDemand>\n"
)


def full_parse(body: bytes, root: str) -> dict[str, str] | str:
    """What the tree parser makes of a body: the fields, or the name of the error it raises."""
    try:
        document = parse_body(body)
    except EagleError as exc:
        return type(exc).__name__
    if not hasattr(document, "tag") or document.tag.lower() != root.lower():
        return "other document"
    return {child.tag: (child.text or "").strip() for child in document}


def test_the_published_sample_is_read_without_a_tree_and_the_same():
    fields = simple_fields(SAMPLE, "InstantaneousDemand")
    assert fields is not None
    assert fields == full_parse(SAMPLE, "InstantaneousDemand")
    assert fields["Demand"] == "0x0004d2" and fields["SuppressLeadingZero"] == "Y"
    assert simple_fields(SAMPLE, "instantaneousdemand") == fields  # the root's case does not matter, as before


@pytest.mark.parametrize(
    "body",
    [
        b'<?xml version="1.0"?>' + SAMPLE,  # a declaration
        b"<!DOCTYPE x [<!ENTITY a 'b'>]>" + SAMPLE,  # a DTD: defusedxml must see it
        SAMPLE.replace(b"<Demand>0x0004d2", b"<Demand>&a;"),  # an entity
        SAMPLE.replace(b"<Demand>", b'<Demand unit="W">'),  # an attribute
        SAMPLE.replace(b"<Demand>0x0004d2</Demand>", b"<Demand/>"),  # self-closing
        SAMPLE.replace(b"<Demand>0x0004d2</Demand>", b"<Demand><V>1</V></Demand>"),  # nesting
        SAMPLE.replace(b"<Demand>0x0004d2</Demand>", b"<Demand>0x0004d2</Demandx>"),  # mismatched tags
        SAMPLE.replace(b"\n", b"\r\n"),  # carriage returns (XML turns them into newlines)
        SAMPLE.replace(b"Y<", b"\xc3\xbc<"),  # non-ASCII text
        SAMPLE.replace(b"Y<", b"a]]>b<"),  # not allowed in XML text
        SAMPLE.replace(b"Y<", b"\x01<"),  # a control character
        SAMPLE.replace(b"\n", b"\x0c"),  # form feed: blank to a regex, not to XML
        b"<Error>Invalid user</Error>",  # an error answer is classified by the full path
        b"<Error><Text>meter not joined</Text></Error>",
        SAMPLE[:-30],  # cut short
        b"",
    ],
)
def test_anything_but_a_simple_document_goes_to_the_full_parser(body):
    assert simple_fields(body, "InstantaneousDemand") is None


def test_a_simple_document_with_another_root_is_left_to_the_full_path_and_its_error():
    body = SAMPLE.replace(b"InstantaneousDemand", b"PriceCluster")
    assert simple_fields(body, "InstantaneousDemand") is None
    with pytest.raises(EagleError, match="expected <InstantaneousDemand>, got <PriceCluster>"):
        answer_fields(200, body, "InstantaneousDemand")


def test_random_answers_read_the_same_either_way():
    """Mutations of the sample (characters dropped, doubled, swapped in from XML's alphabet): wherever the fast
    path answers, it answers what the tree parser answers."""
    rng = random.Random(15)
    alphabet = b"<>/&;!?[]= \t\n\r\x0cabcXYZ019_-.:\"'\xc3\xbc"
    answered = 0
    for _ in range(4000):
        body = bytearray(SAMPLE)
        for _ in range(rng.randint(1, 3)):
            at = rng.randrange(len(body))
            action = rng.random()
            if action < 0.4:
                del body[at]
            elif action < 0.6:
                body.insert(at, body[at])
            else:
                body[at] = rng.choice(alphabet)
        fast = simple_fields(bytes(body), "InstantaneousDemand")
        if fast is not None:
            answered += 1
            assert fast == full_parse(bytes(body), "InstantaneousDemand"), bytes(body)
    assert answered > 100  # the property was really exercised
