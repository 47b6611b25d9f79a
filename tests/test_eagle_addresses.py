"""The gateway address rule and the address policy (loggerapp/eagle/addresses.py): pure functions, no services.

Issue 11 (SSRF): staff could point the logger at any host and port, in spellings that slip past a naive check.
The end-to-end refusals (model, admin, import, both transports, the pinger, the API) are in tests/test_ssrf.py.
"""

from __future__ import annotations

import ipaddress

import pytest

from loggerapp.eagle.addresses import AddressError, AddressPolicy, parse_address


@pytest.mark.parametrize(
    ("text", "netloc", "ip"),
    [
        ("eagle-002506.local", "eagle-002506.local", None),
        ("EAGLE-002506.Local", "eagle-002506.local", None),
        ("eagle.lan:8080", "eagle.lan:8080", None),
        ("192.168.1.20", "192.168.1.20", "192.168.1.20"),
        ("10.8.0.7:80", "10.8.0.7:80", "10.8.0.7"),
        ("[2001:db8::20]", "[2001:db8::20]", "2001:db8::20"),
        ("[2001:DB8:0::20]:65535", "[2001:db8::20]:65535", "2001:db8::20"),
        ("[fd12:3456::1]:80", "[fd12:3456::1]:80", "fd12:3456::1"),
    ],
)
def test_a_host_and_an_optional_port_are_accepted(text, netloc, ip):
    parsed = parse_address(text)
    assert parsed.netloc == netloc
    assert parsed.ip == (ipaddress.ip_address(ip) if ip else None)


@pytest.mark.parametrize(
    "text",
    [
        # a scheme, a path, a query, a fragment, a backslash, user info
        "http://192.168.1.20",
        "https://eagle.lan",
        "eagle.lan/cgi-bin/post_manager",
        "eagle.lan?x=1",
        "eagle.lan#frag",
        "eagle.lan\\@evil.example",
        "admin:hunter2@192.168.1.20",
        "evil.example@192.168.1.20",
        # IPv4 spellings only some resolvers read: short, decimal, hex, octal, leading zeros
        "127.1",
        "10.1",
        "2130706433",
        "0x7f000001",
        "0x7f.0.0.1",
        "0177.0.0.1",
        "127.000.000.001",
        "192.168.001.020",
        "1.2.3.4.5",
        "256.1.1.1",
        # IPv6 without brackets, with a zone, malformed
        "2001:db8::20",
        "[fe80::1%eth0]",
        "[2001:db8::g]",
        "[2001:db8::20",
        "[2001:db8::20]x",
        # ports
        "eagle.lan:",
        "eagle.lan:0",
        "eagle.lan:65536",
        "eagle.lan:080",
        "eagle.lan:+80",
        "eagle.lan:http",
        # not a host name
        ":80",
        "eagle_lan",
        "-eagle.lan",
        "eagle-.lan",
        "eagle..lan",
        ".eagle.lan",
        "eagle.lan.",
        "ea gle.lan",
        "eagle.lan\n",
        "éagle.lan",
        "a" * 64 + ".lan",
        ".".join(["a" * 60] * 5),
        "",
    ],
)
def test_anything_else_is_refused_with_a_reason(text):
    with pytest.raises(AddressError) as refused:
        parse_address(text)
    assert str(refused.value)  # says what is wrong


def test_the_reasons_say_what_to_write_instead():
    def reason(text: str) -> str:
        with pytest.raises(AddressError) as refused:
            parse_address(text)
        return str(refused.value)

    assert "scheme" in reason("https://eagle.lan")
    assert "password field" in reason("admin:pw@eagle.lan")
    assert "192.168.1.20" in reason("127.1")  # the example of a proper spelling
    assert "brackets" in reason("2001:db8::20")


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.255.255.254",
        "0.0.0.0",  # noqa: S104 - Linux connects it to this machine
        "169.254.169.254",  # the cloud metadata service
        "169.254.1.1",
        "224.0.0.251",
        "239.255.255.250",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fe80::1%eth0",
        "ff02::1",
        "::ffff:127.0.0.1",  # IPv4-mapped: judged by the IPv4 address inside
        "::ffff:169.254.169.254",
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "::127.0.0.1",  # IPv4-compatible (deprecated)
        "fd00:ec2::254",  # AWS's IPv6 metadata address
    ],
)
def test_the_default_policy_refuses_this_machine_link_local_multicast_and_unspecified(address):
    assert AddressPolicy().refusal(address) is not None


@pytest.mark.parametrize(
    "address",
    ["192.168.1.20", "10.8.0.7", "172.16.5.4", "100.64.1.2", "203.0.113.9", "8.8.8.8", "fd12:3456::1", "2001:db8::1"],
)
def test_private_vpn_and_public_addresses_stay_allowed(address):
    """EAGLEs sit on home networks and VPNs (Tailscale's 100.64.0.0/10 included)."""
    assert AddressPolicy().refusal(address) is None


def test_allowed_networks_let_refused_ones_back_and_refused_networks_win():
    allowed = (ipaddress.ip_network("127.0.0.0/8"),)
    refused = (ipaddress.ip_network("127.0.0.5/32"), ipaddress.ip_network("10.0.0.0/8"))
    policy = AddressPolicy(allowed=allowed, refused=refused)
    assert policy.refusal("127.0.0.1") is None
    assert "EAGLE_REFUSED_NETWORKS" in policy.refusal("127.0.0.5")
    assert "EAGLE_REFUSED_NETWORKS" in policy.refusal("10.1.2.3")
    assert "EAGLE_REFUSED_NETWORKS" in policy.refusal("::ffff:10.1.2.3")
    assert policy.refusal("::1") is not None  # an IPv4 allowance does not open IPv6 loopback
    assert policy.refusal("192.168.1.20") is None


def test_what_is_typed_is_judged_by_both_rules_names_only_when_they_mean_this_machine():
    policy = AddressPolicy()
    for refused in ("127.0.0.1:80", "[::1]:80", "169.254.169.254", "localhost:8080", "eagle.localhost"):
        with pytest.raises(AddressError):
            policy.check_typed(refused)
    for accepted in ("192.168.1.20:80", "eagle.lan", "[2001:db8::20]"):
        policy.check_typed(accepted)  # a name is judged by the transports, when it is resolved
    AddressPolicy(allowed=(ipaddress.ip_network("127.0.0.0/8"),)).check_typed("localhost:8080")
