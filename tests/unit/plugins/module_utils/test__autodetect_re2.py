"""Go RE2 on Python's re (_autodetect.go_regex_to_python / compile_go_regex_list).

Every expected value below was produced by Go's own regexp package (regexp.Compile(p).MatchString
and the error text of Compile, Go 1.19: the syntax of calico-node up to v3.27.4), and checked
against its parser, regexp/syntax/parse.go, whose rules the translator follows. The Go-release
dependent parts (named groups "(?<name>" from Go 1.22, loose Unicode class names from Go 1.25)
follow parse.go of those releases and the Go toolchain in calico's go.mod at each tag.
"""

from __future__ import annotations

import re

import pytest
from ansible_collections.netdoctor.calico.plugins.module_utils import _autodetect as ad

NAMES = ["eth0", "eth3", "eth\u0663", "ETH0", "ens3", "Eth0", "br-1f", "wlo1", "\u03b1\u03b2", "eth\u212a", "ethk",
         "eth A", "eth\x0b", "eth_0", "A", "eth0\n"]
ALL = list(NAMES)
GO_1_19 = "3.24.0"  # calico-node v3.24.0: go.mod `go 1.18`, the same regexp syntax as Go 1.19

# (pattern, names it matches in Go | Go's compile error)
CASES = [
    ('^eth\\d$', ['eth0', 'eth3']),
    ('^eth\\D$', ['eth\u0663', 'eth\u212a', 'ethk', 'eth\x0b']),
    ('^eth\\w$', ['eth0', 'eth3', 'ethk']),
    ('eth\\s', ['eth A']),
    ('eth\\S$', ['eth0', 'eth3', 'eth\u0663', 'eth\u212a', 'ethk', 'eth\x0b']),
    ('\\beth0\\b', ['eth0', 'eth0\n']),
    ('h\\B0', ['eth0', 'Eth0', 'eth0\n']),
    ('^eth[[:digit:]]$', ['eth0', 'eth3']),
    ('^eth[[:^digit:]]$', ['eth\u0663', 'eth\u212a', 'ethk', 'eth\x0b']),
    ('^[[:alpha:]]+\\d$', ['eth0', 'eth3', 'ETH0', 'ens3', 'Eth0', 'wlo1']),
    ('[[:space:]]', ['eth A', 'eth\x0b', 'eth0\n']),
    ('^\\pL+$', ['\u03b1\u03b2', 'eth\u212a', 'ethk', 'A']),
    ('^\\p{Greek}+$', ['\u03b1\u03b2']),
    ('^\\PL', []),
    ('^eth\\p{Nd}$', ['eth0', 'eth3', 'eth\u0663']),
    ('^eth\\p{^Nd}$', ['eth\u212a', 'ethk', 'eth\x0b']),
    ('^\\P{^Greek}+$', ['\u03b1\u03b2']),
    ('^\\x{41}$', ['A']),
    ('^\\x41$', ['A']),
    ('^\\101$', ['A']),
    ('^\\0101$', []),
    ('^eth\\060$', ['eth0']),
    ('(?i)^eth0$', ['eth0', 'ETH0', 'Eth0']),
    ('(?i)^ethk$', ['eth\u212a', 'ethk']),
    ('(?i:E)th0', ['eth0', 'Eth0', 'eth0\n']),
    ('(?s)eth0.', ['eth0\n']),
    ('eth0.', []),
    ('(?m)^eth0$', ['eth0', 'eth0\n']),
    ('^eth0$', ['eth0']),
    ('eth0\\z', ['eth0']),
    ('\\Aeth', ['eth0', 'eth3', 'eth\u0663', 'eth\u212a', 'ethk', 'eth A', 'eth\x0b', 'eth_0', 'eth0\n']),
    ('(?U)eth\\d+', ['eth0', 'eth3', 'eth0\n']),
    ('(?i)[a-z]{3}\\d', ['eth0', 'eth3', 'ETH0', 'ens3', 'Eth0', 'wlo1', 'eth0\n']),
    ('(?i)\\p{Lu}th0', ['eth0', 'ETH0', 'Eth0', 'eth0\n']),
    ('\\Qeth0\\E', ['eth0', 'eth0\n']),
    ('\\Qeth', ['eth0', 'eth3', 'eth\u0663', 'eth\u212a', 'ethk', 'eth A', 'eth\x0b', 'eth_0', 'eth0\n']),
    ('eth{1}0', ['eth0', 'eth0\n']),
    ('eth{,1}0', []),
    ('^br-.*', ['br-1f']),
    ('^lo', []),
    ('lo', ['wlo1']),
    ('eth(0)\\1', 'error parsing regexp: invalid escape sequence: `\\1`'),
    ('eth(?=0)', 'error parsing regexp: invalid or unsupported Perl syntax: `(?=`'),
    ('eth(?!0)', 'error parsing regexp: invalid or unsupported Perl syntax: `(?!`'),
    ('(?<=e)th', 'error parsing regexp: invalid or unsupported Perl syntax: `(?<`'),
    ('(?<!x)eth', 'error parsing regexp: invalid or unsupported Perl syntax: `(?<`'),
    ('a++', 'error parsing regexp: invalid nested repetition operator: `++`'),
    ('eth\\Z', 'error parsing regexp: invalid escape sequence: `\\Z`'),
    ('\\8', 'error parsing regexp: invalid escape sequence: `\\8`'),
    ('\\p{Foo}', 'error parsing regexp: invalid character class range: `\\p{Foo}`'),
    ('[[:foo:]]', 'error parsing regexp: invalid character class range: `[:foo:]`'),
    ('(?x)eth', 'error parsing regexp: invalid or unsupported Perl syntax: `(?x`'),
    ('(?P<if>eth)0', ['eth0', 'eth0\n']),
    ('(?<if>eth)0', 'error parsing regexp: invalid or unsupported Perl syntax: `(?<`'),
    ('(?P=if)', 'error parsing regexp: invalid or unsupported Perl syntax: `(?P`'),
    ('\\C', 'error parsing regexp: invalid escape sequence: `\\C`'),
    ('\\pZ', ['eth A']),
    ('(?i)\\x{212a}', ['eth\u212a', 'ethk']),
    ('[^\\n]', ALL),
    ('\\e', 'error parsing regexp: invalid escape sequence: `\\e`'),
    ('\\cA', 'error parsing regexp: invalid escape sequence: `\\c`'),
    ('\\u0041', 'error parsing regexp: invalid escape sequence: `\\u`'),
    ('\\N{LATIN}', 'error parsing regexp: invalid escape sequence: `\\N`'),
    ('(?#c)eth', 'error parsing regexp: invalid or unsupported Perl syntax: `(?#`'),
    ('eth0{1001}', 'error parsing regexp: invalid repeat count: `{1001}`'),
    ('(?-i)eth', ['eth0', 'eth3', 'eth\u0663', 'eth\u212a', 'ethk', 'eth A', 'eth\x0b', 'eth_0', 'eth0\n']),
    ('(?i-)eth', 'error parsing regexp: invalid or unsupported Perl syntax: `(?i-)`'),
    ('()', ALL),
    ('x|', ALL),
    ('|eth0', ALL),
    ('(?i)ETH\\d', ['eth0', 'eth3', 'ETH0', 'Eth0', 'eth0\n']),
    ('[\\d-z]', ['eth0', 'eth3', 'ETH0', 'ens3', 'Eth0', 'br-1f', 'wlo1', 'eth_0', 'eth0\n']),
    ('[a-\\d]', 'error parsing regexp: invalid escape sequence: `\\d`'),
    ('[z-a]', 'error parsing regexp: invalid character class range: `z-a`'),
]


@pytest.mark.parametrize(("pattern", "expected"), CASES, ids=[c[0] for c in CASES])
def test_go_regexp_semantics(pattern, expected):
    if isinstance(expected, str):
        with pytest.raises(ad.GoRegexError) as exc:
            ad.go_regex_to_python(pattern, GO_1_19)
        assert str(exc.value) == expected
        return
    rx = re.compile(ad.go_regex_to_python(pattern, GO_1_19))
    assert [n for n in NAMES if rx.search(n)] == expected


def test_ascii_perl_classes_but_unicode_names():
    """Issue 13: \\d is ASCII in Go, so eth + ARABIC-INDIC DIGIT THREE does not match ^eth\\d$."""
    rx = ad.compile_go_regex_list(["^eth\\d$"])
    assert rx.search("eth3") and not rx.search("eth\u0663")
    assert ad.go_regex_to_python("^eth\\d$") == "\\Aeth[0-9]\\Z"


def test_joined_list_is_one_regex():
    """GetInterfaces compiles "(" + strings.Join(list, ")|(") + ")" (interfaces.go, every tag): a
    regex that is broken alone can be whole joined, and (?i) stays inside its own group."""
    assert ad.compile_go_regex_list(["eth0)|(ens3"]).search("ens3")
    rx = ad.compile_go_regex_list(["(?i)^ETH0$", "^ens3$"])
    assert rx.search("eth0") and rx.search("ens3") and not rx.search("ENS3")
    with pytest.raises(ad.GoRegexError, match=r"missing closing \): `\(\(eth0\)`"):
        ad.compile_go_regex_list(["(eth0"])


@pytest.mark.parametrize(("calico", "accepted"), [
    ("3.26.4", False), ("3.26.5", True),    # v3.26.5 go.mod: toolchain go1.22.5
    ("3.27.4", False), ("3.27.5", True),    # v3.27.5 go.mod: go 1.22
    ("3.28.0", True), ("3.32.0", True), ("3.24.6", False),
])
def test_named_group_without_p_from_go_1_22(calico, accepted):
    if accepted:
        assert ad.compile_go_regex_list(["(?<if>eth)0"], calico).search("eth0")
    else:
        with pytest.raises(ad.GoRegexError, match="invalid or unsupported Perl syntax: `\\(\\?<`"):
            ad.compile_go_regex_list(["(?<if>eth)0"], calico)
    # Look-behind is never accepted; from Go 1.22 it reads as a bad group name.
    with pytest.raises(ad.GoRegexError):
        ad.compile_go_regex_list(["(?<=e)th"], calico)


@pytest.mark.parametrize(("pattern", "go_1_24", "go_1_25"), [
    ("\\p{greek}", False, True), ("\\p{Letter}", False, True), ("\\p{lu}", False, True),
    ("\\p{Greek}", True, True), ("\\p{Old_Italic}", True, False),  # parse.go canonicalName drops the _
    ("\\p{Any}", True, True), ("\\p{Assigned}", False, True), ("\\p{ASCII}", False, True), ("\\p{LC}", False, True),
])
def test_unicode_class_names_by_go_release(pattern, go_1_24, go_1_25):
    """v3.31.4 is built with Go 1.24 (go.mod go 1.24.13), v3.31.5 and v3.32.0 with Go 1.25."""
    for calico, accepted in (("3.31.4", go_1_24), ("3.31.5", go_1_25), ("3.32.0", go_1_25)):
        if accepted:
            assert ad.compile_go_regex_list([pattern], calico) is not None
        else:
            with pytest.raises(ad.GoRegexError, match="invalid character class range"):
                ad.compile_go_regex_list([pattern], calico)


def test_unicode_tables_and_folding():
    rx = ad.compile_go_regex_list(["^\\p{Greek}+$"])
    assert rx.search("\u03b1\u03b2") and not rx.search("ab")
    assert ad.compile_go_regex_list(["(?i)^k$"]).search("\u212a")   # KELVIN SIGN folds to k in Go
    assert ad.compile_go_regex_list(["(?i)^s$"]).search("\u017f")   # LATIN SMALL LETTER LONG S
    assert not ad.compile_go_regex_list(["(?i)^i$"]).search("\u0130")  # no simple folding for I WITH DOT
    assert ad.compile_go_regex_list(["(?i)^\\p{Lu}$"]).search("a")      # Lu has a fold table
    assert not ad.compile_go_regex_list(["(?i)^\\p{Lo}$"]).search("a")


def test_what_cannot_be_replayed_is_refused_with_a_reason():
    with pytest.raises(ad.RegexNotModelled, match="Unicode tables newer than 13.0"):
        ad.compile_go_regex_list(["\\p{Kawi}"], "3.30.0")
    with pytest.raises(ad.GoRegexError):  # Go 1.19/1.20 do not know the script either
        ad.compile_go_regex_list(["\\p{Kawi}"], "3.24.0")
    deep = "(" * 990 + "a" + ")" * 990
    with pytest.raises(ad.RegexNotModelled, match="nested too deeply"):
        ad.compile_go_regex_list([deep])
    assert ad.compile_go_regex_list(["(" * 200 + "a" + ")" * 200]).search("a")


def test_go_limits():
    with pytest.raises(ad.GoRegexError, match="invalid repeat count: `\\{101\\}`"):
        ad.go_regex_to_python("(a{10}){101}")
    assert ad.go_regex_to_python("(a{10}){100}")
    with pytest.raises(ad.GoRegexError, match="expression too large"):
        ad.go_regex_to_python("a{1000}" * 4000)
    with pytest.raises(ad.GoRegexError, match="invalid UTF-8"):
        ad.go_regex_to_python("eth\udcff")
