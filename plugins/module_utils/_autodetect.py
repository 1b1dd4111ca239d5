# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# PRIVATE to this collection: may change at any time without notice.

"""Replay of calico-node's IP autodetection on a netlink snapshot (pure: data in, data out).

Follows calico-node's ``node/pkg/lifecycle/startup/autodetection`` (``autodetection_methods.go``,
``interfaces.go``, ``filtered.go``, ``reachaddr.go``, ``addr_linux.go``) release by release; what
is modelled, with the tags each rule was read at, is in docs/autodetection.md:

* links are walked in REVERSE kernel link-dump order (the snapshot keeps that order: ascending
  ifindex on current kernels, hash-bucket order on older ones), addresses of a link in kernel dump
  order; no link-state, address-flag or prefix-length filter;
* addresses as calico-node reads them: up to v3.31 through Go's ``net`` (``IFA_LOCAL``/prefix),
  from v3.32 through netlink's ``AddrList`` (an address with a peer becomes ``IFA_LOCAL``/32 or
  /128); an IPv4-mapped IPv6 address is an IPv4 candidate (Go prints ``a.b.c.d/(len-96)``);
* include/exclude regex lists are joined into one ``(a)|(b)`` regex and matched unanchored with
  Go's RE2 semantics (translated exactly to Python ``re`` below, or refused with a reason);
* the default exclusion list depends on the Calico release, to the patch; ``interface=``,
  ``cidr=``, ``can-reach=`` and ``kubernetes-internal-ip`` ignore it; ``skip-interface=`` adds to it;
* an address qualifies when Go's ``net.IP.IsGlobalUnicast`` is true (RFC1918 and ULA count).

Every candidate is reported in walk order with the reason it was taken or passed over.
"""

from __future__ import annotations

import base64
import bisect
import functools
import ipaddress
import re
import zlib

# --- Calico releases --------------------------------------------------------------------------

# DEFAULT_INTERFACES_TO_EXCLUDE, verbatim, per Calico release
# (node/pkg/lifecycle/startup/autodetection/autodetection_linux.go at the tag named).
EXCLUDE_UNANCHORED_PRE_3_15 = [
    "docker.*", "cbr.*", "dummy.*",
    "virbr.*", "lxcbr.*", "veth.*", "lo",
    "cali.*", "tunl.*", "flannel.*", "kube-ipvs.*",
]
EXCLUDE_UNANCHORED = [  # v3.15 .. v3.23.3 and v3.24.0 .. v3.24.2
    "docker.*", "cbr.*", "dummy.*",
    "virbr.*", "lxcbr.*", "veth.*", "lo",
    "cali.*", "tunl.*", "flannel.*", "kube-ipvs.*", "cni.*",
]
EXCLUDE_ANCHORED_V3_23_4 = [  # v3.23.4 and v3.24.3: "Match full interface names to exclude", backported
    "^docker.*", "^cbr.*", "^dummy.*",
    "^virbr.*", "^lxcbr.*", "^veth.*", "^lo",
    "^cali.*", "^tunl.*", "^flannel.*", "^kube-ipvs.*", "^cni.*",
]
EXCLUDE_ANCHORED_V3_23_5 = EXCLUDE_ANCHORED_V3_23_4 + [  # v3.23.5, v3.24.4 and v3.24.5
    "^vxlan\\.calico.*", "^vxlan-v6\\.calico.*", "^wireguard\\.cali.*", "^wg-v6\\.cali.*",
]
EXCLUDE_ANCHORED_V3_24_6 = EXCLUDE_ANCHORED_V3_23_5 + ["^nodelocaldns.*"]  # v3.24.6
EXCLUDE_ANCHORED = [  # v3.25.0 and later
    "^docker.*", "^cbr.*", "^dummy.*", "^podman.*",
    "^virbr.*", "^lxcbr.*", "^veth.*", "^lo", "^br-.*",
    "^cali.*", "^tunl.*", "^flannel.*", "^kube-ipvs.*", "^cni.*",
    "^vxlan\\.calico.*", "^vxlan-v6\\.calico.*", "^wireguard\\.cali.*", "^wg-v6\\.cali.*",
    "^nodelocaldns.*",
]

LATEST_CALICO_VERSION = "3.34"

FIRST_FOUND = "first-found"
CAN_REACH = "can-reach="
INTERFACE = "interface="
SKIP_INTERFACE = "skip-interface="
CIDR = "cidr="
K8S_INTERNAL_IP = "kubernetes-internal-ip"

# Methods that older calico-node builds do not know and so reject as invalid.
_METHOD_SINCE = {CIDR: (3, 16, 0), K8S_INTERNAL_IP: (3, 22, 0)}
# From v3.32.0 GetInterfaces reads addresses with netlink.AddrList (addr_linux.go), not Go's net.
_NETLINK_ADDRS_SINCE = (3, 32, 0)

_VERSION_RE = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?")
# regexp.MustCompile(`\s*,\s*`).Split: Go's \s is ASCII [\t\n\f\r ] (no \v).
_LIST_SPLIT = re.compile(r"[\t\n\f\r ]*,[\t\n\f\r ]*")


def calico_release(calico_version):
    """``"3.24"``, ``"v3.24.5"``, ``"3.30.0-0.dev"`` or None (latest) -> ``(major, minor, patch)``;
    a version without a patch level is read as its ``.0`` release."""
    m = _VERSION_RE.match(str(calico_version or LATEST_CALICO_VERSION).strip())
    if not m:
        raise ValueError(f"unparsable Calico version {calico_version!r} (expected e.g. '3.24', '3.24.5' or 'v3.30.1')")
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def parse_calico_version(calico_version):
    """``(major, minor)`` of a Calico version string (see calico_release)."""
    return calico_release(calico_version)[:2]


def exclusion_list(calico_version=None):
    """DEFAULT_INTERFACES_TO_EXCLUDE of the given Calico release."""
    rel = calico_release(calico_version)
    line, patch = rel[:2], rel[2]
    if rel >= (3, 25, 0):
        patterns = EXCLUDE_ANCHORED
    elif line == (3, 24) and patch >= 6:
        patterns = EXCLUDE_ANCHORED_V3_24_6
    elif (line == (3, 24) and patch >= 4) or (line == (3, 23) and patch >= 5):
        patterns = EXCLUDE_ANCHORED_V3_23_5
    elif (line == (3, 24) and patch >= 3) or (line == (3, 23) and patch >= 4):
        patterns = EXCLUDE_ANCHORED_V3_23_4
    elif rel >= (3, 15, 0):
        patterns = EXCLUDE_UNANCHORED
    else:
        patterns = EXCLUDE_UNANCHORED_PRE_3_15
    return list(patterns)


def _k8s_masked(rel):
    """v3.22.0-v3.22.3 and v3.23.0-v3.23.1 return the masked network for kubernetes-internal-ip
    (fixed by "Return unmasked CIDR ..." in v3.22.4 and v3.23.2; v3.24.0 has the fix)."""
    return (3, 22, 0) <= rel < (3, 22, 4) or (3, 23, 0) <= rel < (3, 23, 2)


# The Go release line calico-node was built with, as go.mod's go/toolchain line at each tag says:
# {Calico release line: ((first patch, Go minor), ...)}. It decides regexp syntax (named groups
# "(?<name>" from Go 1.22; Unicode class names matched loosely, and their aliases, from Go 1.25).
_GO_MOD = {
    (3, 24): ((0, 18), (6, 20)), (3, 25): ((0, 18), (2, 19)), (3, 26): ((0, 19), (2, 20), (5, 22)),
    (3, 27): ((0, 21), (5, 22)), (3, 28): ((0, 22), (4, 23)), (3, 29): ((0, 22), (2, 23), (6, 24)),
    (3, 30): ((0, 24),), (3, 31): ((0, 24), (5, 25)),
}


def go_release(calico_version=None):
    """``(1, minor)``: the Go release calico-node of that Calico release was built with (at least)."""
    rel = calico_release(calico_version)
    if rel[:2] in _GO_MOD:
        return 1, [minor for first, minor in _GO_MOD[rel[:2]] if rel[2] >= first][-1]
    return (1, 17) if rel < (3, 24, 0) else (1, 25)


# --- Go RE2 (regexp/syntax) on Python's re ----------------------------------------------------
# A parser that follows Go's regexp/syntax/parse.go (Perl flags, as regexp.Compile uses) step by
# step, with Go's error texts, into a small tree; the tree is written out as a Python pattern made
# only of unambiguous pieces: explicit code point classes (ASCII \d \w \s \b, POSIX classes,
# Unicode tables from Go 1.19 = Unicode 13.0.0, Go's simple case folding for (?i)), look-arounds
# for Go's ^ $ \A \z \b \B. Python's own flags are never used. What cannot be replayed exactly
# raises RegexNotModelled.

class GoRegexError(ValueError):
    """Go's regexp.Compile rejects the pattern; the message is Go's."""

    def __init__(self, code, expr):
        super().__init__(f"error parsing regexp: {code}: `{expr}`")


class RegexNotModelled(ValueError):
    """Go accepts the pattern but this replay cannot reproduce its meaning exactly."""

    def __init__(self, why):
        super().__init__(f"cannot replay this regular expression exactly: {why}")


_FOLD_CASE, _CLASS_NL, _DOT_NL, _ONE_LINE, _NON_GREEDY, _PERL_X, _UNICODE_GROUPS = 1, 4, 8, 16, 32, 64, 128
_PERL = _CLASS_NL | _ONE_LINE | _PERL_X | _UNICODE_GROUPS
_MAX_RUNE = 0x10FFFF
_MAX_REPEAT = 1000
_MAX_HEIGHT = 1000
_MAX_SIZE = (128 << 20) // 40

_ERR_CHAR_RANGE = "invalid character class range"
_ERR_ESCAPE = "invalid escape sequence"
_ERR_NAMED = "invalid named capture"
_ERR_PERL_OP = "invalid or unsupported Perl syntax"
_ERR_REPEAT_OP = "invalid nested repetition operator"
_ERR_REPEAT_SIZE = "invalid repeat count"
_ERR_UTF8 = "invalid UTF-8"
_ERR_BRACKET = "missing closing ]"
_ERR_PAREN = "missing closing )"
_ERR_REPEAT_ARG = "missing argument to repetition operator"
_ERR_BACKSLASH = "trailing backslash at end of expression"
_ERR_UNEXPECTED_PAREN = "unexpected )"
_ERR_DEPTH = "expression nests too deeply"
_ERR_LARGE = "expression too large"

_ANY = ((0, _MAX_RUNE),)
_ANY_NOT_NL = ((0, 9), (11, _MAX_RUNE))
_DIGIT = ((0x30, 0x39),)
_WORD = ((0x30, 0x39), (0x41, 0x5A), (0x5F, 0x5F), (0x61, 0x7A))
_PERL_GROUPS = {  # regexp/syntax/perl_groups.go
    "\\d": (1, _DIGIT), "\\D": (-1, _DIGIT),
    "\\s": (1, ((0x9, 0xA), (0xC, 0xD), (0x20, 0x20))), "\\S": (-1, ((0x9, 0xA), (0xC, 0xD), (0x20, 0x20))),
    "\\w": (1, _WORD), "\\W": (-1, _WORD),
}
_POSIX = {
    "alnum": ((0x30, 0x39), (0x41, 0x5A), (0x61, 0x7A)), "alpha": ((0x41, 0x5A), (0x61, 0x7A)),
    "ascii": ((0x0, 0x7F),), "blank": ((0x9, 0x9), (0x20, 0x20)), "cntrl": ((0x0, 0x1F), (0x7F, 0x7F)),
    "digit": _DIGIT, "graph": ((0x21, 0x7E),), "lower": ((0x61, 0x7A),), "print": ((0x20, 0x7E),),
    "punct": ((0x21, 0x2F), (0x3A, 0x40), (0x5B, 0x60), (0x7B, 0x7E)), "space": ((0x9, 0xD), (0x20, 0x20)),
    "upper": ((0x41, 0x5A),), "word": _WORD, "xdigit": ((0x30, 0x39), (0x41, 0x46), (0x61, 0x66)),
}
_POSIX_GROUPS = {f"[:{name}:]": (1, cls) for name, cls in _POSIX.items()}
_POSIX_GROUPS.update({f"[:^{name}:]": (-1, cls) for name, cls in _POSIX.items()})

# Unicode tables of Go 1.19's package unicode (Unicode 13.0.0): the general categories, the
# scripts and the simple case folding orbits (unicode.SimpleFold), as zlib-compressed varints
# (per table: count, then gap and length-1 of each range; then the orbits). Generated with Go 1.19.
_UNICODE_CATEGORY_NAMES = ('Cc', 'Cf', 'Co', 'Cs', 'Ll', 'Lm', 'Lo', 'Lt', 'Lu', 'Mc', 'Me', 'Mn', 'Nd', 'Nl', 'No',
                           'Pc', 'Pd', 'Pe', 'Pf', 'Pi', 'Po', 'Ps', 'Sc', 'Sk', 'Sm', 'So', 'Zl', 'Zp', 'Zs')

_UNICODE_SCRIPT_NAMES = (
    'Adlam', 'Ahom', 'Anatolian_Hieroglyphs', 'Arabic', 'Armenian', 'Avestan', 'Balinese', 'Bamum', 'Bassa_Vah',
    'Batak', 'Bengali', 'Bhaiksuki', 'Bopomofo', 'Brahmi', 'Braille', 'Buginese', 'Buhid', 'Canadian_Aboriginal',
    'Carian', 'Caucasian_Albanian', 'Chakma', 'Cham', 'Cherokee', 'Chorasmian', 'Common', 'Coptic', 'Cuneiform',
    'Cypriot', 'Cyrillic', 'Deseret', 'Devanagari', 'Dives_Akuru', 'Dogra', 'Duployan', 'Egyptian_Hieroglyphs',
    'Elbasan', 'Elymaic', 'Ethiopic', 'Georgian', 'Glagolitic', 'Gothic', 'Grantha', 'Greek', 'Gujarati',
    'Gunjala_Gondi', 'Gurmukhi', 'Han', 'Hangul', 'Hanifi_Rohingya', 'Hanunoo', 'Hatran', 'Hebrew', 'Hiragana',
    'Imperial_Aramaic', 'Inherited', 'Inscriptional_Pahlavi', 'Inscriptional_Parthian', 'Javanese', 'Kaithi',
    'Kannada', 'Katakana', 'Kayah_Li', 'Kharoshthi', 'Khitan_Small_Script', 'Khmer', 'Khojki', 'Khudawadi', 'Lao',
    'Latin', 'Lepcha', 'Limbu', 'Linear_A', 'Linear_B', 'Lisu', 'Lycian', 'Lydian', 'Mahajani', 'Makasar',
    'Malayalam', 'Mandaic', 'Manichaean', 'Marchen', 'Masaram_Gondi', 'Medefaidrin', 'Meetei_Mayek',
    'Mende_Kikakui', 'Meroitic_Cursive', 'Meroitic_Hieroglyphs', 'Miao', 'Modi', 'Mongolian', 'Mro', 'Multani',
    'Myanmar', 'Nabataean', 'Nandinagari', 'New_Tai_Lue', 'Newa', 'Nko', 'Nushu', 'Nyiakeng_Puachue_Hmong', 'Ogham',
    'Ol_Chiki', 'Old_Hungarian', 'Old_Italic', 'Old_North_Arabian', 'Old_Permic', 'Old_Persian', 'Old_Sogdian',
    'Old_South_Arabian', 'Old_Turkic', 'Oriya', 'Osage', 'Osmanya', 'Pahawh_Hmong', 'Palmyrene', 'Pau_Cin_Hau',
    'Phags_Pa', 'Phoenician', 'Psalter_Pahlavi', 'Rejang', 'Runic', 'Samaritan', 'Saurashtra', 'Sharada', 'Shavian',
    'Siddham', 'SignWriting', 'Sinhala', 'Sogdian', 'Sora_Sompeng', 'Soyombo', 'Sundanese', 'Syloti_Nagri',
    'Syriac', 'Tagalog', 'Tagbanwa', 'Tai_Le', 'Tai_Tham', 'Tai_Viet', 'Takri', 'Tamil', 'Tangut', 'Telugu',
    'Thaana', 'Thai', 'Tibetan', 'Tifinagh', 'Tirhuta', 'Ugaritic', 'Vai', 'Wancho', 'Warang_Citi', 'Yezidi', 'Yi',
    'Zanabazar_Square',
)
_UNICODE_TABLES = (
    "eNrtWgl4VdW1Xmvtvc905ww3uUnuvRlIyDxACBAEgorwQVVUpFRr1fZpHVqF6uv03msPIAFFKcqgoEJwRBmMVixqlcik4kMjitaRiArVFkV9ilqV"
    "t/a5CYJMguDH+76XPdxz9nzWWnutf+0dguTZ+RmLEdY7KgptCHWwXsDCBHwRkjmyTqL9p0cEfIb0WAGEYNMJ1pZpJJ4pM5tfq4XE2cJtEzvq3Kl9"
    "vtwhiBO6rWJHaKI6N9YIZVloIhxSwAO8HyCQzom8J4FS5/xGXXXoletnbmRAV81+50PdRgAeajB4Fh5Vdr0fjzmPoTekoDTILUQUtI+uUi+XsGfN"
    "gaexD2lx9B1IffChtvTxaDnRp0qNj1i/qRjox4LzAY++YB35GSzlmJbZmQdI56YlEQ0WCkSLM8t0+Ok6LcYCcll8WJi5QkIvWJhZrYtTY0nNOKWO"
    "PFXQ9GbzFyMomP7hwfVO30/dpN1e6Tsu09xdrmXqba+jKtiVbMJrW8G/S41yZZknt81Fwy/vsmLr7O6TsWhVqMe6rKS7EJNznsJYjoGRnFiO0Bsc"
    "HX7aPeTmZaPK+UZCeKGwoH+rikhfUGpqTtRreF3AZoTbEK8hVlhJ3skCniB43oY/wlIJLwfgYnhTQrtQS3BAAAq73asgAGH/xiz8AGE5wgYBFVLB"
    "uXgWzXodYZOtphL8CvLwd9YIyIJLkRtE4UqEX0Am/lzY0LwAoQpbXkTxjOVvYjl6bhMa14ThHXE3sqZ3CaRoR3jYyJGiKol2EeJPEbLRYVUaBozH"
    "R/sgOz8zszzbdHplYOSYXgLSwLTD/FWsWDOZIiCE4LYB1p5BdMBSMlXu/SWZaukUtpgrqTKp+4cwC3xd/b2yBPcOQQRQ8X4QnsAj7wYSvijUm9w7"
    "iiEBOaQwATL1but++dwuhBE9fqlesSKLspWKiCy9tclorEH0q37oadgszm1EG0hmiXwYaGJRrrysPAPCSvI3CDRJ+v0w9gleAvGHcV7KKX/nWxD7"
    "cH5scWjsPySFMaaGGabpRxGMcPDzF/QsheMKsd6UVMD8Huwk6uIkfRUy1hC161uxOmL0jgfQqcgpKiMnPlawoPCWf8gS27N6Z0dtA3cLd2oNIE+3"
    "AH8kQZXjWZFkbciVy3s2fXErigz8xDquuzWFZMjBY6Fu8F0IPwdhMCkERuM9g3UDFNsy9OU60VieWV0lyXIklmYRmhkhJjSIOmYektRbKBuFY0JQ"
    "EQe9jmuxMH7rD/1RWXvFsVuJLjxOk86vzZTH14sL3qW0gdSr1He5xGa80MZKSgivN1GRD2OYxq2CFCj8/USRJ2prkoF0NI1iJ05F0nTxxJ92t3re"
    "hA+QnemYN6DiJVRoUlDUidqJQdzZyXRiJ/Q2sAlCvEbMK88TeUUm5ub24pq0QOSSoX/BolepzMCT8ljqMi/KyI3664dX5mfnFMVZD1iFAvw1QZHJ"
    "H1cUweyRHgsxiLZZXbKb7KWBX87F+jSRQYmaDBaVZVhdJrrVZEC/8gAMyXkbK55j0QAyuX1WiMf7iUklvDsgD5zuJmSCryodCvtMIgu7RaAuPkYP"
    "XJwJMaV3QBAep7RHEE6ebW7GlfjXzCXWs8k18sHjlkkzMTaeVtMzQ6VtM4YpuAe311gb7HJr++C5VEcRYU0RV6RdpPzCMu3NQysL4AOqmOGswocd"
    "gTkphMNc0YoJjC7UQZ3lu5h6EvypwmtnY1ix7sHwqsLX1lHh/fm+15DGVQVbG+dl3yw3+daWOKuFB5ZKYGY/z1b5WU/UwFdyUOy8KBoFh6is6QDv"
    "3wYrptQCwzmhc53t/EKv3FMaYHrLP/B8tE9j8e2ClgaCFPV1mJ8CjxazIrUUDKNVBLzafQygvGVTj9ojhPh2R3l0hEEDFT8Z9fDCenX6nAhjvzY6"
    "GgHfodLyYGboAnvK11limUOFXwfpE81scrWnwgZWSCPVgO2cgwr6wxcZ1XWdTo2nrbQeoyNPE8tDT+uOGND7Lj4VB2c3Ye6EeXsfU3oW6utZhYZ5"
    "C5dgbLUH7BaFemxNAbsWDex08Lw+0urE5DftoZlo5Gr0wSMJI3cXqJfILugKsLSw4B6ckAa9eYNbrIp6YCNp0+vwfI10LCcmKvbCRq2bvfLz0XP/"
    "yIEy6i/66xqplbXNlq+RzaauKcfhZJhpuJZwICxk68TKhNiYMhwzMpEbgUOzg2Cy7nmZWIjYjVAd6E3Cco2WupZdLw11uaI/MFTibzuGV6h1Z61p"
    "4UJka/VACX70vv7q0dgjNBWxBmq5PdElvMxsqOKxfsmTKtiagnAI05/Q1PwjVPF8lzFS6Ae1ZGMAztI6GO5GSmJj6tvIBgefRTaEAi5ir5sLeRgy"
    "+GcsF+qRteNzIX/YRN14uwZA0mPnVO7FLs9IiOMAuF5AEC7yVPkGlPwx8Drhyy3YcAF+tIJHUGqyjfdXwlw/Y4MpU4geJ9e4dDrJK6myE6HAUKc2"
    "IwznGZq0KIogkXOm02jZkC1Qw0VZQb8JYrK3liiTd6ThYBwaGQ5bkIE5TIC+ID2yaHAqwKffpV5sBkYZ3jfqRXNbE30MSfuDH3qwvPXVkwldFvda"
    "GKAwA/OwL6bGjcNQYOwBZzA09Zs/BbJ8ahjmetLaO6C5phwssuF8DxlqzjPOFAFejcFWeLmi+0yKUxwTyFjesIAcm7nyGyyEXzNvbDDoFc3YRu2p"
    "6G1iGjZBLUPzgaLWO2NQUGr5MV97ntTHM5dIjbyiG3gyPxpa3gSu0ettV36miu+rLLoG4Zzk3VJcjM//g4ll5+MInEaeExVjMbkeMScSgBIz5lRT"
    "LYMNwu5wnJZn9LNmqYGeWqPp72HxtuA9vXsltM5FeEOFwqF1JmxCmImyOcCLUqKUJNyO+IgUEwTORqcVoSHYh+p42MHUTaI5APxYbzksUmdrRcmU"
    "aWHxNjN50QKKDSFXMlhjGmfBSOYTkxTfQ6ERWS6ebuoOF2nKcNV5GkjICVou3dSxzTQtxBLy7VJFzC+bsWy1H3EWd+f2p2aS59X83oPVmsJDNf3g"
    "FcJ/XY+yn3GDBQPFKbBsNuITZRQxyUiIGUgPhxpkncUCHZUYbHcMDHvjyIlkLBWiw2f80lh6T+372L/WvsNvN6O9Bu2bhP3rPcI5nE6wZxFna4J2"
    "ib2IbBftO9A27AfQHqW7Gvaa6WTfobiWR4ly4Sxhz+ImzT67OWIvMnSPY+xpqId5gXjAT8g+n8MdgrNPlP0J8ugPzEZ7M9r/8zesa0vTVS/47VnF"
    "tv+9Kno/o5DEV3kQs4K0cCva7fdj/X9r1NOM8u6mS4bcxzxkhbM0TX1K6rc0EY2X0IhY9wp7qZX+kWV3CJgZAKF4oRgqgxdUv5MyP5HxdxyYYYur"
    "0E6YGMy3uwe3vYvq2XuxcpCI4AbK6Sbud8yY0d0aLqOqRTuLVNVk1WOChssLzGyzzFhLqoMSc9EuF2OMZkz/F6WvdnCJsLYYac8ZGc3XozHXiD75"
    "BKb/Ivvpcmu+2agdpR9UYnCF6TfOho0DMR1ef1hgNr2PkFYFrzosuY/lwUQLrgyrcXkstkkWjlcEG75LYdqNAovZMrHTNS8JQ8u4bRIeibM4vB6E"
    "u9LZLoTgc22qEvCotZuNGqGd1s4wY++GsYlTAdze1W+j2MOQEs6dI+AlhDh809JGvF927/WKNMh1HkZ4bQDX5METuZ4BJV4cqzS2Bv8coG0fxHav"
    "WYoF1IlC0GFLmAvHs+YIogmPKmb1eqHKoMEbu5LVG6JWUMPE+VAReAepIZhk5c4G72qE38LvoJn9MHifWOc5uID9LxgDw1iTXqp4+rekNdGA/6Qh"
    "eDNzg4oVigcJ/8YbkreXWoTGjSj6yQHYZPpghYGMqSxt9hgtsSszJ8bmZwz8ibeSPvi1PEcA2cW1SYNyP8ESQX2BXa/xf9dHLvQz5tdl6gsSo7CU"
    "FUQdW75z/WH8T/EHhuqfIdx2mz7BjbKeJqGPIUxtwXAmfoMW3XiWOYJuUmxq5wrYouBxZFJPI6sExhjHGj8Sy0y5FY1fsnr9g6jFk9msBVgHjlYX"
    "w3whHV7mBfA5Ri+kPP8zSF8gTCa6EeHH5mmsfeYKWY4TFTJO3GbJz6YgTkQYJJnqhnic4K+zEbb0k+vjOLyUTU4SHu2Uua/SmHElh1XuYrB6L5IH"
    "81nyXtyv5Ol1aS8ysxv8l3jHhv+ADwVyNOFjhoYEqyXcmA6rIslPpxKsXKiPq+awHtWg65OBYi5LTGs6JH7Cgw3xHFsBV0rhDyht1ML/zoL4F7Zd"
    "5KOADnhTAb75T4za+HNsN7lyTQuGvtDI+haE6/8uZFMFhKk/v1fxUMW8tK8U/EnSw/XMle48whSE7ozEj5fKgyLEsCPp3QQkp1A+ngGJ7FK1QTDA"
    "ajAvhXaSlHBCLo3H6ACZpHFUm0Hq1XkClmm/7zbsnGsCwz7x/GLBREx+Iy2qxgfwjpQZRHjWhKsI/4hPa5ybjtu5q4SPCcZrk3MFwjMIZTBJUEhb"
    "UZXhkXgimtqeKrEacZuyn9NOF9yMBW+QbVsTfJqOvP80TuqCzD4MehC6EW2Z8px5gyW01cPE1WTKdDJoBMZj3Y3jY84pJ0YfYDCJvaxLeD2VFU07"
    "0JU1mWiUMNK74G1UbxNWx3C0fwPm+CwIsJ3XhyntLL12flFewhe3IJR0SkLLqa3nwGmLseENQ2ixf0TShDsRNgsNHjCAD5LVN8y22i+gpvJzPz4j"
    "4ZNsmBkxZXjtLBQKXmAWvlnyMTol1E9RFM24bMwaJOAhHHWXvUP0Fj1MHgafCMCrURjHxFQV8mf+IAVZz3TLasE+eYEKabFJUXPwc1QvKku7YZf5"
    "R5u+DJ/sbdlsUeKEJ/0WT8Fm9AdICmLTlK1xU8Aouw6xARfwrrirCcx8RsAbK2BHmtONQU0LS7i73hwubYnCXSJzKChD6E5Wa2Rf1y+ZPQGP9km0"
    "fTG8GAtG1LRQBkZ8Qcxrf0uMjXSenwV+pc/P3kwkxi0X3/lQpx7lvU4x1RFN+IeQ5M6SvYRBbsNwWUkt6+iHk8eLZZLaN6g449S23j0tEXTT9bHn"
    "zpNcsrQrZGnYJClbusukhZUYcPLEuwpn/7h8TFK4LfJEGWdxdEfsQHLrc3lxbdXp5JbukK1yMLZMlLXUepXs6QNyb5H1GJHu89RgB4j1smjpfjqp"
    "D5fQydg6T+YuZp2To3KqmV0yizfHY6JESUq/nDeb3sBfajwaBH3MexNvBsksxpdsmCnELQTv+9hsPKVJsc7mnWxqyMx6eqLho1HosLwFI8mmYr1p"
    "mKzhMpKzVMzJnGe69JHUcuzKU28WPqn9xeyQKcWZDObOwOkYyi86ZmByRA2MvhNZfN37sOB8up3REGqgOYU9E1x/K2I7w6tCTEMxXXOZP8JxoAqb"
    "DDQcOZ49s0phjfD3rHwLcza/hMhqW7yaEuT+Imx5grwd0/2j7OxJOBJP2OmE+rxbhqaUG8qQtdMNxeeIbiWq+6D0uB8cs2JXKXcWY58Ym+Cdcv6i"
    "efBCXmxPmuzd9G4yA9NOuUwZ0m2Ts83zL0HpW4mGO01+fUILlmtdgbQA26st3p4/gC35ybZtePbUe5gX7mR5snTTRsggxToepaTl3ieNzqPTOH+k"
    "z7bRbZX9lPup0XmwyQbd7ZBLLFY47lWyO3bMk9F8t9vQ/Z/BU1LENvfc48j8Ft7lXUfYTkuBdyBF5SimZekTqXzv3XRHV2P1/C3GTiSOrc0yJ+Te"
    "Ib/eC1r+9V4gz4kz2IWV3bYZwjt8TO1KfS6TjgOCoTt6yB5SypHQRpk8dzGnrivxBNUzjwIsgmms5qw7CR6dQfDyQjwpAhtbxODguEzCXS5H2K32"
    "wEZIkM80jI6HpD5C7qav/Uw7PC6D3ahdb1eYJzLlorL0gxlOd89KqeUabb2toFhlpi4LJtyH+hB/1ruIU1toHye/QbdwBy45BsfRWWMTgxJvbMW8"
    "CSp1B3DbyTsP98mdI7tbNrZUZ4iOa2UaL03a1/oarBypFrwrYjuvCGz12DmnG/TGV+pm1kiLWTtT2zSZiVYeu+ozCVcJJwc6lHilMMzW+Bve59US"
    "V2D+gwl2Ot+eI0LhwDOem/hyPiz8gjpdq/Wvs9NEHbNkmjKpbZbMJFO4z9GJxCqZ3PlykA8CbszfdVlEms7sm5taivQ10Pxzf0S0DUPtWI0/nHqD"
    "sLFyUwfBm1og11MVsqDPYIlg0uv7B97StmnRWxsV3NiwQUi35ixid2uzSJJ7m4xgBbXeLhuV7RsX//q2KUqaGkprvvxBMSNWw+hMRdl9bxPd5Y31"
    "xUatEsqPgwftwA/Iu+q7Rju0uRApfTEzecvHeJ6oJ6vcaTXYdUYxax4acyweR7h9eosgb2O3RwJ90qc9deFeLVP3Kabryt2uYKj9SappZeyF7kSZ"
    "Ry3XyZgCbL9FlmDHIzLbdHM0lXqgFq8QxagtnMt7tm2mLJE+sW0Zw5xMDJjuQ1LLXYXn/VosAm2vqjNExwaKPolV/Iluu7mKHTPRMl1mMaCoQne6"
    "ZHPxuhom+5hhchfJ43226dZqsbXYVR1tli/9F2uqtudVgmEJKvd22XVJ4wg3fx623UeJc5m+18qEZYmWP0uTqsiRbs8KGTMc3ozuAnkmc7Yt1MiC"
    "+QazZuoEnMK8WWFWioCWA3Sr8rC9T41wZ8segR6mIrdZFtmE7kyZxPZmWU4tk2SRDKA7V+ueGVzq3iCHBsdFaU9dYJJnFyPUeiX3KSL3ShknW7kv"
    "qMGOzQ0zVBp2TOMh2pbKPtjWTr3JvU7mMtxxr5cRU/gNal1PRWwYW6qGCYfccBUFyX2WBls+dG+VZ2P7ZFlD7kLZi4qF22pOUSGJwcA4trE7rzQZ"
    "OmlYp7U3/XOSTMfWubKM2uczH21sv1+eSm7vgS6rILedKqUbDGA/omnEs1XzHhMd1ZrXSO094iRVS/0AFm3HsI0AuRvo2GxGDYuZXXba+Czc8zJW"
    "Sl2iVWIwY/Wdsi4AsoOpntxeY+1QrrT8bra/87LWTO02JB6ENw66oToal9dX5ZpuYggWsegVMZ8NRk+tZ/Rmy8Vg4S45xGIxmiTjWlLX0kJW2avN"
    "vqzBW+6Vp/qZijfLMn2WRG4bXW2LBnTvl0P+7tCgfMJ9RoH5Gwftq2YR7b3mzC1qkkG+bzbf3LSfifYZaa/ly/tR/u80J+hwRNn1IPbRQByOWXYO"
    "IlYye9dj1/KfTj2t45913qM4mXAtPz31dQW7ungu4XP882yq9FZO+nUDp/GcXsBdyPFy6uXl1KSdby/xz0s7W73iPfGXiz5CaZ89lQ6BBF3d5OHg"
    "wJ7RWjjSI8oC/lnemfh1MOGQPQRgHtfdxGnuSHKeWcvo9SnO5ALOcJV+0hluP43wMV355Wnk33IaqZX65W7OojN1/XVrSd6JIy//rA9VdC1Oje8k"
    "Mye6nMwSYqiCXqQmooGEA1lSWcgH7BT3c1JPEvP7/pgx2KhdhZmrGziNEJT8uqRm59OXjZ1y3s3SoObA1DNJeRwyRhAeVOyc8L3a1O/W2v3rgrdq"
    "dz5uqpU6e7N2X21f3aOmTp8Q3157cJLhHKY9/nUM7V1viMM+0XdUF0y/7zeujXb0ITwKE3EyOIm2LML/I2nXtc5X7fcwS/8/O2oy6xtRTI+smE4r"
    "pxN9gFfMYEuxOU6RZfzwq6NLK7AC7XeYB/UfZXqPrD3Zo6O9R4nvW7fcV7nf0tOl4j57DSPkOGqX+G9edDGVxnjxDzqK77yiXcvZLQzbFPCeQ17O"
    "hj5o03LKo+ow4cHEDKQ/GzmEhy/eG/zeDdR+IvvfZpcEmZ4x9x1tcu3FFJxjtPb0h/itIfC+Ysa3bjkZDxJ1f/fo2xuqUl7UzweCgb4Wcy84TXb1"
    "r0RatOQQ3Mn9xDV2qf5H6O8/Xvl9TrY4xG74URnfyzqs7NwzjluIR3iG+R9jIR35+L/Sk7YV"
)


# Which tables have fold tables in Go (unicode.FoldCategory / unicode.FoldScript): (?i)\p{X} adds
# the code points that fold into X only for these; for them that is exactly the orbit closure.
_FOLD_CATEGORIES = ("L", "Ll", "Lt", "Lu", "M", "Mn")
_FOLD_SCRIPTS = ("Common", "Greek", "Inherited")
# Scripts and categories Go >= 1.21 knows (Unicode 14.0/15.0) and these Unicode 13.0 tables do not.
_NEWER_UNICODE_NAMES = ("Cypro_Minoan", "Kawi", "Nag_Mundari", "Old_Uyghur", "Tangsa", "Toto", "Vithkuqi")
# unicode.CategoryAliases (Go >= 1.25), from Unicode's PropertyValueAliases.txt (gc).
_CATEGORY_ALIASES = {
    "Other": "C", "Control": "Cc", "cntrl": "Cc", "Format": "Cf", "Unassigned": "Cn", "Private_Use": "Co",
    "Surrogate": "Cs", "Letter": "L", "Cased_Letter": "LC", "Lowercase_Letter": "Ll", "Modifier_Letter": "Lm",
    "Other_Letter": "Lo", "Titlecase_Letter": "Lt", "Uppercase_Letter": "Lu", "Mark": "M", "Combining_Mark": "M",
    "Spacing_Mark": "Mc", "Enclosing_Mark": "Me", "Nonspacing_Mark": "Mn", "Number": "N", "Decimal_Number": "Nd",
    "digit": "Nd", "Letter_Number": "Nl", "Other_Number": "No", "Punctuation": "P", "punct": "P",
    "Connector_Punctuation": "Pc", "Dash_Punctuation": "Pd", "Close_Punctuation": "Pe", "Final_Punctuation": "Pf",
    "Initial_Punctuation": "Pi", "Other_Punctuation": "Po", "Open_Punctuation": "Ps", "Symbol": "S",
    "Currency_Symbol": "Sc", "Modifier_Symbol": "Sk", "Math_Symbol": "Sm", "Other_Symbol": "So",
    "Separator": "Z", "Line_Separator": "Zl", "Paragraph_Separator": "Zp", "Space_Separator": "Zs",
}


def _varints(data):
    value = shift = 0
    for byte in data:
        value |= (byte & 0x7F) << shift
        if byte & 0x80:
            shift += 7
        else:
            yield value
            value = shift = 0


@functools.lru_cache(maxsize=1)
def _unicode():
    """-> ({category or script name: ranges}, {code point: its fold orbit}), decoded once."""
    numbers = _varints(zlib.decompress(base64.b64decode("".join(_UNICODE_TABLES))))
    tables = {}
    for name in _UNICODE_CATEGORY_NAMES + _UNICODE_SCRIPT_NAMES:
        ranges, prev = [], 0
        for _index in range(next(numbers)):
            lo = prev + next(numbers)
            prev = lo + next(numbers) + 1
            ranges.append((lo, prev - 1))
        tables[name] = tuple(ranges)
    for major in "CLMNPSZ":  # Go's major categories are the unions of their subcategories
        tables[major] = _clean(r for name in _UNICODE_CATEGORY_NAMES if name[0] == major for r in tables[name])
    tables["LC"] = _clean(tables["Lu"] + tables["Ll"] + tables["Lt"])
    tables["Cn"] = _negate(_clean(r for name in _UNICODE_CATEGORY_NAMES for r in tables[name]))
    orbits, prev = {}, 0
    for _index in range(next(numbers)):
        size, first = next(numbers), prev + next(numbers)
        orbit = (first,) + tuple(first + next(numbers) for _index in range(size - 1))
        for member in orbit:
            orbits[member] = orbit
        prev = first
    return tables, orbits


def _clean(ranges):
    """Sorted, merged ranges (Go's cleanClass)."""
    out = []
    for lo, hi in sorted(ranges):
        if out and lo <= out[-1][1] + 1:
            if hi > out[-1][1]:
                out[-1] = (out[-1][0], hi)
        else:
            out.append((lo, hi))
    return tuple(out)


def _negate(ranges):
    out, next_lo = [], 0
    for lo, hi in ranges:
        if next_lo <= lo - 1:
            out.append((next_lo, lo - 1))
        next_lo = hi + 1
    if next_lo <= _MAX_RUNE:
        out.append((next_lo, _MAX_RUNE))
    return tuple(out)


def _fold(ranges):
    """The ranges plus every code point simple case folding makes equivalent to one of them
    (Go's appendFoldedRange, which walks unicode.SimpleFold orbits)."""
    ranges = _clean(ranges)
    starts = [lo for lo, _hi in ranges]
    extra = []
    for c, orbit in _unicode()[1].items():
        k = bisect.bisect_right(starts, c) - 1
        if k >= 0 and c <= ranges[k][1]:
            extra.extend((m, m) for m in orbit)
    return _clean(list(ranges) + extra) if extra else ranges


def _canonical_name(name):
    """regexp/syntax canonicalName (Go >= 1.25): first letter upper, the rest lower, no _ - or space."""
    out, first = [], True
    for c in name:
        if c in "_- ":
            continue
        if first:
            out.append(c.upper() if "a" <= c <= "z" else c)
            first = False
        else:
            out.append(c.lower() if "A" <= c <= "Z" else c)
    return "".join(out)


def _unicode_table(name, go):
    """-> (ranges, fold ranges or None, sign) of a \\p{name} (regexp/syntax unicodeTable), or None
    if Go of that release does not know the name."""
    tables = _unicode()[0]
    if go >= (1, 25):
        name = _canonical_name(name)
        if name == "Any":
            return _ANY, _ANY, 1
        if name == "Assigned":
            return tables["Cn"], tables["Cn"], -1
        if name in ("Ascii", "Lc"):
            table = ((0, 0x7F),) if name == "Ascii" else tables["LC"]
            return table, _fold(table), 1
        if name not in tables or name == "LC":
            aliases = {_canonical_name(alias): actual for alias, actual in _CATEGORY_ALIASES.items()}
            name = aliases.get(name, "")
        newer = [n for n in _NEWER_UNICODE_NAMES if _canonical_name(n) == n]
    else:
        if name == "Any":
            return _ANY, _ANY, 1
        if name in ("LC", "Cn"):  # categories Go added in 1.25
            name = ""
        newer = _NEWER_UNICODE_NAMES if go >= (1, 21) else ()
    if name in newer:
        raise RegexNotModelled(f"\\p{{{name}}} needs Unicode tables newer than 13.0")
    if name not in tables:
        return None
    fold = _fold(tables[name]) if name in _FOLD_CATEGORIES + _FOLD_SCRIPTS + ("LC",) else None
    return tables[name], fold, 1


class _GoParser:
    """regexp/syntax.Parse(s, Perl) as a stack machine, like parse.go; go = (1, minor)."""

    def __init__(self, s, go):
        self.s, self.n, self.go = s, len(s), go
        self.flags = _PERL
        self.stack = []

    def fail(self, code, expr):
        raise GoRegexError(code, expr)

    # -- the stack ----------------------------------------------------------------------------

    def push(self, node):
        self.stack.append(node)

    def literal(self, c):
        self.push(("lit", c, bool(self.flags & _FOLD_CASE)))

    def _above_marker(self):
        k = len(self.stack)
        while k > 0 and self.stack[k - 1][0] not in ("(", "|"):
            k -= 1
        subs = self.stack[k:]
        del self.stack[k:]
        return subs

    def concat(self):
        subs = self._above_marker()
        flat = [x for sub in subs for x in (sub[1] if sub[0] == "cat" else (sub,))]
        self.push(("op", "empty") if not flat else flat[0] if len(flat) == 1 else ("cat", flat))

    def alternate(self):
        subs = self._above_marker()
        flat = [x for sub in subs for x in (sub[1] if sub[0] == "alt" else (sub,))]
        self.push(("cls", ()) if not flat else flat[0] if len(flat) == 1 else ("alt", flat))

    def swap_vertical_bar(self):
        if len(self.stack) >= 2 and self.stack[-2][0] == "|":
            self.stack[-2], self.stack[-1] = self.stack[-1], self.stack[-2]
            return True
        return False

    # -- the main loop ------------------------------------------------------------------------

    def parse(self):
        s, n = self.s, self.n
        bad = next((k for k, c in enumerate(s) if 0xD800 <= ord(c) <= 0xDFFF), None)
        if bad is not None:  # undecodable bytes (surrogateescape) are invalid UTF-8 for Go
            self.fail(_ERR_UTF8, s[bad:])
        i, last_repeat = 0, None
        while i < n:
            c, repeat = s[i], None
            if c == "(":
                if s.startswith("(?", i):
                    i = self.perl_flags(i)
                else:
                    self.push(("(", self.flags, True))
                    i += 1
            elif c == "|":
                self.concat()
                if not self.swap_vertical_bar():
                    self.push(("|",))
                i += 1
            elif c == ")":
                self.right_paren()
                i += 1
            elif c == "^":
                self.push(("op", "bot" if self.flags & _ONE_LINE else "bol"))
                i += 1
            elif c == "$":
                self.push(("op", "eot" if self.flags & _ONE_LINE else "eol"))
                i += 1
            elif c == ".":
                self.push(("cls", _ANY if self.flags & _DOT_NL else _ANY_NOT_NL))
                i += 1
            elif c == "[":
                i = self.parse_class(i)
            elif c in "*+?":
                repeat, i = i, self.repeat(c, 0, 0, i, i + 1, last_repeat=last_repeat)
            elif c == "{":
                counts = self.parse_repeat(i)
                if counts is None:  # not a repeat: a literal {
                    self.literal(ord("{"))
                    i += 1
                else:
                    lo, hi, after = counts
                    if lo < 0 or lo > _MAX_REPEAT or hi > _MAX_REPEAT or (hi >= 0 and lo > hi):
                        self.fail(_ERR_REPEAT_SIZE, s[i:after])
                    repeat, i = i, self.repeat("{", lo, hi, i, after, last_repeat=last_repeat)
            elif c == "\\":
                i = self.backslash(i)
            else:
                self.literal(ord(c))
                i += 1
            last_repeat = repeat
        self.concat()
        if self.swap_vertical_bar():
            self.stack.pop()
        self.alternate()
        if len(self.stack) != 1:
            self.fail(_ERR_PAREN, s)
        tree = self.stack[0]
        if _height(tree) > _MAX_HEIGHT:
            self.fail(_ERR_DEPTH, s)
        if _size(tree) > _MAX_SIZE:
            self.fail(_ERR_LARGE, s)
        return tree

    def right_paren(self):
        self.concat()
        if self.swap_vertical_bar():
            self.stack.pop()
        self.alternate()
        if len(self.stack) < 2 or self.stack[-2][0] != "(":
            self.fail(_ERR_UNEXPECTED_PAREN, self.s)
        body = self.stack.pop()
        _marker, self.flags, capture = self.stack.pop()
        self.push(("cap", body) if capture else body)

    def repeat(self, op, lo, hi, before, after, *, last_repeat):
        s, flags = self.s, self.flags
        if after < self.n and s[after] == "?":
            after += 1
            flags ^= _NON_GREEDY
        if last_repeat is not None:
            self.fail(_ERR_REPEAT_OP, s[last_repeat:after])
        if not self.stack or self.stack[-1][0] in ("(", "|"):
            self.fail(_ERR_REPEAT_ARG, s[before:after])
        node = ("rep", op, lo, hi, not flags & _NON_GREEDY, self.stack.pop())
        self.push(node)
        if op == "{" and (lo >= 2 or hi >= 2) and not _repeat_is_valid(node, _MAX_REPEAT):
            self.fail(_ERR_REPEAT_SIZE, s[before:after])
        return after

    def parse_int(self, i):
        s = self.s
        if i >= self.n or not "0" <= s[i] <= "9":
            return None, i
        if s[i] == "0" and i + 1 < self.n and "0" <= s[i + 1] <= "9":
            return None, i  # no leading zeros
        j = i
        while j < self.n and "0" <= s[j] <= "9":
            j += 1
        return (int(s[i:j]) if j - i <= 8 else -1), j

    def parse_repeat(self, i):
        """{min} {min,} {min,max} at i -> (min, max (-1: none), end) or None (then { is a literal)."""
        s = self.s
        lo, j = self.parse_int(i + 1)
        if lo is None or j >= self.n:
            return None
        if s[j] != ",":
            hi = lo
        else:
            j += 1
            if j >= self.n:
                return None
            if s[j] == "}":
                hi = -1
            else:
                hi, j = self.parse_int(j)
                if hi is None:
                    return None
                if hi < 0:
                    lo = -1
        if j >= self.n or s[j] != "}":
            return None
        return lo, hi, j + 1

    def perl_flags(self, i):
        """(?flags) (?flags:  (?P<name>  (?<name> (Go >= 1.22) at i; returns the next index."""
        s, n = self.s, self.n
        starts_p = n - i > 4 and s[i + 2] == "P" and s[i + 3] == "<"
        starts_name = self.go >= (1, 22) and n - i > 3 and s[i + 2] == "<"
        if starts_p or starts_name:
            end = s.find(">", i)
            if end < 0:
                self.fail(_ERR_NAMED, s[i:])
            name = s[i + (4 if starts_p else 3):end]
            if not name or not all(c == "_" or (c.isascii() and c.isalnum()) for c in name):
                self.fail(_ERR_NAMED, s[i:end + 1])
            self.push(("(", self.flags, True))
            return end + 1
        j, flags, sign, saw_flag = i + 2, self.flags, 1, False
        while j < n:
            c = s[j]
            j += 1
            if c == "m":
                flags &= ~_ONE_LINE
                saw_flag = True
            elif c in "isU":
                flags |= {"i": _FOLD_CASE, "s": _DOT_NL, "U": _NON_GREEDY}[c]
                saw_flag = True
            elif c == "-":
                if sign < 0:
                    break
                sign, flags, saw_flag = -1, ~flags, False
            elif c in ":)":
                if sign < 0:
                    if not saw_flag:
                        break
                    flags = ~flags
                if c == ":":
                    self.push(("(", self.flags, False))
                self.flags = flags
                return j
            else:
                break
        self.fail(_ERR_PERL_OP, s[i:j])
        return j  # not reached

    def backslash(self, i):
        s = self.s
        if i + 1 < self.n:
            e = s[i + 1]
            if e in "AbBz":
                self.push(("op", {"A": "bot", "b": "wb", "B": "nwb", "z": "eot"}[e]))
                return i + 2
            if e == "C":
                self.fail(_ERR_ESCAPE, s[i:i + 2])
            if e == "Q":
                end = s.find("\\E", i + 2)
                for c in s[i + 2:] if end < 0 else s[i + 2:end]:
                    self.literal(ord(c))
                return self.n if end < 0 else end + 2
            if e in "pP":
                ranges, j = self.unicode_class(i)
                self.push(("cls", ranges))
                return j
            group = _PERL_GROUPS.get(s[i:i + 2])
            if group:
                self.push(("cls", self.group(group)))
                return i + 2
        c, j = self.escape(i)
        self.literal(c)
        return j

    def escape(self, i):
        """parseEscape: one escaped code point at i -> (code point, next index)."""
        s, n = self.s, self.n
        j = i + 1
        if j >= n:
            self.fail(_ERR_BACKSLASH, "")
        c = s[j]
        j += 1
        if c in "1234567" and not (j < n and "0" <= s[j] <= "7"):
            self.fail(_ERR_ESCAPE, s[i:j])  # a single non-zero digit is a back-reference
        if c in "01234567":
            value = int(c)
            for _attempt in range(2):
                if j < n and "0" <= s[j] <= "7":
                    value = value * 8 + int(s[j])
                    j += 1
            return value, j
        if c == "x":
            return self.hex_escape(i, j)
        if c in "afnrtv":
            return {"a": 7, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11}[c], j
        if ord(c) < 0x80 and not c.isalnum():
            return ord(c), j
        self.fail(_ERR_ESCAPE, s[i:j])
        return 0, j  # not reached

    def hex_escape(self, i, j):
        s, n = self.s, self.n
        if j >= n:
            self.fail(_ERR_ESCAPE, s[i:j])
        c = s[j]
        j += 1
        if c == "{":
            value = digits = 0
            while True:
                if j >= n:
                    self.fail(_ERR_ESCAPE, s[i:j])
                c = s[j]
                j += 1
                if c == "}":
                    break
                if c not in "0123456789abcdefABCDEF":
                    self.fail(_ERR_ESCAPE, s[i:j])
                value = value * 16 + int(c, 16)
                if value > _MAX_RUNE:
                    self.fail(_ERR_ESCAPE, s[i:j])
                digits += 1
            if not digits:
                self.fail(_ERR_ESCAPE, s[i:j])
            return value, j
        second = s[j] if j < n else ""
        j += 1 if second else 0
        if c not in "0123456789abcdefABCDEF" or not second or second not in "0123456789abcdefABCDEF":
            self.fail(_ERR_ESCAPE, s[i:j])
        return int(c + second, 16), j

    def group(self, group):
        """appendGroup: a Perl or POSIX class, folded under (?i), then negated if it is a \\D-style one."""
        sign, ranges = group
        if self.flags & _FOLD_CASE:
            ranges = _fold(ranges)
        return _negate(ranges) if sign < 0 else tuple(ranges)

    def unicode_class(self, i):
        """\\pN \\p{Name} \\PN \\P{Name} \\p{^Name} at i -> (ranges, next index)."""
        s, n = self.s, self.n
        sign = -1 if s[i + 1] == "P" else 1
        j = i + 2
        c = s[j] if j < n else ""
        j += 1 if c else 0
        if c != "{":
            seq, name = s[i:j], s[i + 2:j]
        else:
            end = s.find("}", i)
            if end < 0:
                self.fail(_ERR_CHAR_RANGE, s[i:])
            seq, j, name = s[i:end + 1], end + 1, s[i + 3:end]
        if name.startswith("^"):
            sign, name = -sign, name[1:]
        found = _unicode_table(name, self.go)
        if found is None:
            self.fail(_ERR_CHAR_RANGE, seq)
        table, fold, table_sign = found
        sign *= table_sign
        if self.flags & _FOLD_CASE and fold is not None:
            table = _clean(table + fold)
        return (tuple(table) if sign > 0 else _negate(table)), j

    def parse_class(self, i):
        """[...] at i; pushes the class, returns the next index."""
        s, n = self.s, self.n
        j, ranges, sign, first = i + 1, [], 1, True
        if j < n and s[j] == "^":
            sign, j = -1, j + 1  # Perl flags include ClassNL: [^a] matches \n
        while j >= n or s[j] != "]" or first:
            first = False
            if j >= n:
                self.fail(_ERR_BRACKET, s[i:])
            if s.startswith("[:", j) and n - j > 2:
                end = s.find(":]", j + 2)
                if end >= 0:
                    name = s[j:end + 2]
                    if name not in _POSIX_GROUPS:
                        self.fail(_ERR_CHAR_RANGE, name)
                    ranges.extend(self.group(_POSIX_GROUPS[name]))
                    j = end + 2
                    continue
            if s.startswith(("\\p", "\\P"), j):
                found, j = self.unicode_class(j)
                ranges.extend(found)
                continue
            if s[j:j + 2] in _PERL_GROUPS:
                ranges.extend(self.group(_PERL_GROUPS[s[j:j + 2]]))
                j += 2
                continue
            start = j
            lo, j = self.class_char(j, i)
            hi = lo
            if n - j >= 2 and s[j] == "-" and s[j + 1] != "]":
                hi, j = self.class_char(j + 1, i)
                if hi < lo:
                    self.fail(_ERR_CHAR_RANGE, s[start:j])
            ranges.extend(_fold(((lo, hi),)) if self.flags & _FOLD_CASE else ((lo, hi),))
        cleaned = _clean(ranges)
        self.push(("cls", _negate(cleaned) if sign < 0 else cleaned))
        return j + 1

    def class_char(self, j, class_start):
        if j >= self.n:
            self.fail(_ERR_BRACKET, self.s[class_start:])
        if self.s[j] == "\\":
            return self.escape(j)
        return ord(self.s[j]), j + 1


def _children(node):
    kind = node[0]
    if kind in ("cat", "alt"):
        return node[1]
    if kind == "cap":
        return (node[1],)
    if kind == "rep":
        return (node[5],)
    return ()


def _repeat_is_valid(node, limit):
    """Go's repeatIsValid: nested counted repetitions multiply to at most `limit` copies."""
    if node[0] == "rep" and node[1] == "{":
        most = node[3] if node[3] >= 0 else node[2]
        if node[3] == 0:
            return True
        if most > limit:
            return False
        if most > 0:
            limit //= most
    return all(_repeat_is_valid(sub, limit) for sub in _children(node))


def _height(node):
    """Go's parse-tree height (a run of literals is one node there)."""
    subs = _children(node)
    if node[0] == "cat" and all(sub[0] == "lit" and sub[2] == subs[0][2] for sub in subs):
        return 1
    return 1 + max((_height(sub) for sub in subs), default=0)


def _size(node):
    """Go's calcSize: the compiled program's size, for the "expression too large" limit."""
    kind = node[0]
    if kind == "lit":
        return 1
    if kind in ("cat", "alt"):
        total = sum(_size(sub) for sub in node[1])
        return max(1, total + (len(node[1]) - 1 if kind == "alt" else 0))
    if kind == "cap":
        return 2 + _size(node[1])
    if kind == "rep":
        op, lo, hi, sub = node[1], node[2], node[3], _size(node[5])
        if op == "*":
            return 2 + sub
        if op in "+?":
            return 1 + sub
        if hi == -1:
            return 2 + sub if lo == 0 else 1 + lo * sub
        return max(1, hi * sub + (hi - lo))
    return 1


def _esc(cp):
    c = chr(cp)
    if c.isascii() and c.isalnum():
        return c
    return f"\\x{cp:02x}" if cp < 0x100 else f"\\u{cp:04x}" if cp < 0x10000 else f"\\U{cp:08x}"


def _set_text(ranges):
    return "".join(_esc(lo) if lo == hi else f"{_esc(lo)}-{_esc(hi)}" for lo, hi in ranges)


def _class_text(ranges):
    """A code point class as Python re text; a class reaching U+10FFFF is written as the negation of
    its complement (the same set, as Python strings hold no code point beyond it, and much faster to
    compile than a range up to U+10FFFF)."""
    if not ranges:
        return "(?!)"
    if len(ranges) == 1 and ranges[0][0] == ranges[0][1]:
        return _esc(ranges[0][0])
    if ranges[-1][1] == _MAX_RUNE:
        complement = _negate(ranges)
        return f"[^{_set_text(complement)}]" if complement else "(?s:.)"
    return f"[{_set_text(ranges)}]"


_W = "[0-9A-Za-z_]"  # Go's \b and \B are ASCII word boundaries
_EMPTY_OPS = {
    "bol": "(?<![^\\n])", "eol": "(?![^\\n])", "bot": "\\A", "eot": "\\Z", "empty": "",
    "wb": f"(?:(?<={_W})(?!{_W})|(?<!{_W})(?={_W}))", "nwb": f"(?:(?<={_W})(?={_W})|(?<!{_W})(?!{_W}))",
}


def _emit(node):
    kind = node[0]
    if kind == "lit":
        orbit = _unicode()[1].get(node[1]) if node[2] else None
        return _class_text(tuple((m, m) for m in orbit)) if orbit else _esc(node[1])
    if kind == "cls":
        return _class_text(node[1])
    if kind == "op":
        return _EMPTY_OPS[node[1]]
    if kind == "cat":
        return "".join(_emit(sub) for sub in node[1])
    if kind == "alt":
        return "(?:" + "|".join(_emit(sub) for sub in node[1]) + ")"
    if kind == "cap":
        return "(?:" + _emit(node[1]) + ")"
    op, lo, hi, greedy, sub = node[1:]
    count = op if op != "{" else f"{{{lo}}}" if lo == hi else f"{{{lo},}}" if hi < 0 else f"{{{lo},{hi}}}"
    return f"(?:{_emit(sub)}){count}{'' if greedy else '?'}"


@functools.lru_cache(maxsize=512)
def _translate(pattern, go):
    try:
        return _emit(_GoParser(pattern, go).parse())
    except RecursionError:
        raise RegexNotModelled("nested too deeply for Python's re") from None


def go_regex_to_python(pattern, calico_version=None):
    """Translate a Go RE2 pattern (as calico-node of that release compiles it) to an equivalent
    Python ``re`` pattern. Raises GoRegexError (Go's own message) for what Go rejects, and
    RegexNotModelled for what this replay cannot reproduce exactly."""
    return _translate(pattern, go_release(calico_version))


def compile_go_regex_list(regexes, calico_version=None):
    """Compile a regex list the way GetInterfaces does: one ``(r1)|(r2)`` regex, or None if empty.
    The result's ``search`` is Go's ``MatchString``."""
    return _compile_joined(tuple(regexes), go_release(calico_version)) if regexes else None


@functools.lru_cache(maxsize=256)
def _compile_joined(regexes, go):
    joined = "(" + ")|(".join(regexes) + ")"
    try:
        return re.compile(_translate(joined, go))
    except (RecursionError, re.error, OverflowError) as e:
        raise RegexNotModelled(f"Python's re cannot compile the translation ({e})") from None


def _go_list(items):
    """A list the way Go's %v prints a slice: ``[a b]``."""
    return "[" + " ".join(str(i) for i in items) + "]"


def split_method_list(text):
    """``regexp.MustCompile(`\\s*,\\s*`).Split(text, -1)`` as AutoDetectCIDR splits a method's list."""
    return _LIST_SPLIT.split(text)


# --- Go's net package: IPs and CIDRs ----------------------------------------------------------

def go_parse_ip(text):
    """net.ParseIP: an IPv4 or IPv6 literal (no zone, no leading zeros in IPv4 octets) ->
    ipaddress object, or None. An IPv4-mapped IPv6 literal stays IPv6 here; see _to4."""
    text = str(text)
    if not text or "%" in text or not text.isascii():
        return None
    tail = text.rsplit(":", 1)[-1]
    if "." in tail and any(len(octet) > 1 and octet[0] == "0" for octet in tail.split(".")):
        return None
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _to4(ip):
    """net.IP.To4: the IPv4 address of an IPv4 or IPv4-mapped IPv6 address, else None."""
    return ip if ip.version == 4 else ip.ipv4_mapped


def _go_parse_cidr(text):
    """net.ParseCIDR, then the network as Go's IPNet uses it: an IPv4-mapped network of /96 or
    longer is an IPv4 network (networkNumberAndMask), so it contains IPv4 addresses."""
    ip_text, slash, length = text.partition("/")
    ip = go_parse_ip(ip_text)
    if ip is None or not slash or not (length.isascii() and length.isdigit()) or int(length) > ip.max_prefixlen:
        raise ValueError(f"invalid CIDR address: {text}")
    net = ipaddress.ip_network(f"{ip}/{int(length)}", strict=False)
    mapped = net.network_address.ipv4_mapped if net.version == 6 else None
    if mapped is not None and net.prefixlen >= 96:
        net = ipaddress.ip_network(f"{mapped}/{net.prefixlen - 96}")
    return net


_BROADCAST = ipaddress.IPv4Address("255.255.255.255")


def is_global_unicast(ip):
    """Go's net.IP.IsGlobalUnicast (true for RFC1918 and ULA; IPv4-mapped addresses as IPv4)."""
    ip = _to4(ip) or ip
    return not (ip.is_unspecified or ip.is_loopback or ip.is_multicast or ip.is_link_local or ip == _BROADCAST)


def _not_global_reason(ip):
    for attr in ("is_unspecified", "is_loopback", "is_multicast", "is_link_local"):
        if getattr(ip, attr):
            return attr[3:].replace("_", "-")
    return "broadcast"


# --- links and addresses as calico-node reads them --------------------------------------------

def calico_cidr(addr, calico_version=None):
    """A snapshot address as calico-node's GetInterfaces reads it -> (ipaddress ip, prefix, note).

    Up to v3.31 through Go's net (IFA_LOCAL with the message's prefix length); from v3.32
    through netlink.AddrList, which gives an address that has a peer as IFA_LOCAL/32 (or /128).
    Either way Go prints an IPv4-mapped IPv6 address as a.b.c.d/(len-96), and calico-node parses
    that as an IPv4 address. ``note`` says when the reading differs from the snapshot's.
    """
    ip = ipaddress.ip_address(addr["address"])
    prefix, note = addr["prefixlen"], None
    if addr.get("peer") is not None and calico_release(calico_version) >= _NETLINK_ADDRS_SINCE:
        prefix, note = ip.max_prefixlen, f"an address with peer {addr['peer']}: netlink gives /{ip.max_prefixlen}"
    mapped = ip.ipv4_mapped if ip.version == 6 else None
    if mapped is not None:
        return mapped, max(prefix - 96, 0), f"IPv4-mapped ::ffff:{mapped}/{addr['prefixlen']}: Go reads it as IPv4"
    return ip, prefix, note


def _walk(snapshot):
    """Links in calico-node's walk order (the snapshot's link list, which is the kernel's dump
    order, reversed) with their addresses in dump order."""
    by_index = {}
    for addr in snapshot.get("addresses") or ():
        by_index.setdefault(addr["index"], []).append(addr)
    links = list(snapshot.get("links") or ())
    return [(link, by_index.get(link["index"], [])) for link in reversed(links)]


def _first_match(regexes, name, calico_version):
    """Which single pattern of a list matches (for display; the decision uses the joined regex)."""
    for pattern in regexes:
        try:
            if compile_go_regex_list([pattern], calico_version).search(name):
                return pattern
        except ValueError:
            continue
    return _go_list(regexes)


def _row(link, address, taken, reason):
    return {"interface": link["name"], "index": link["index"], "address": address, "taken": taken, "reason": reason}


def _address_rows(addrs, calico_version):
    """-> (text, ip, note) for each address of a link, as calico-node reads it."""
    for addr in addrs:
        ip, prefix, note = calico_cidr(addr, calico_version)
        yield f"{ip}/{prefix}", ip, note


def _enumerate(snapshot, version, calico_version, include=None, exclude=None, *, accept=None):
    """GetInterfaces, then the first acceptable address, with every candidate explained.

    ``accept(ip)`` -> None if the address qualifies, else why not. Returns (candidates, winner
    row or None, number of interfaces that passed the name filters).
    """
    inc_re = compile_go_regex_list(include, calico_version)
    exc_re = compile_go_regex_list(exclude, calico_version)
    candidates, winner, passed = [], None, 0
    for link, addrs in _walk(snapshot):
        name = link["name"]
        if inc_re is not None and not inc_re.search(name):
            candidates.append(_row(link, None, False, f"does not match interface regex {_go_list(include)}"))
            continue
        if exc_re is not None and exc_re.search(name):
            candidates.append(_row(link, None, False, f"excluded by {_first_match(exclude, name, calico_version)}"))
            continue
        passed += 1
        if not addrs:
            candidates.append(_row(link, None, False, "no addresses"))
        for text, ip, note in _address_rows(addrs, calico_version):
            if ip.version != version:
                reason = f"IPv{ip.version} address, looking for IPv{version}"
            elif winner is not None:
                reason = "not reached: an earlier address was taken"
            elif not is_global_unicast(ip):
                reason = f"not global unicast ({_not_global_reason(ip)})"
            else:
                reason = accept(ip) if accept else None
            row = _row(link, text, reason is None, reason)
            if reason is None:
                row["reason"] = f"taken: first global unicast IPv{version} address in walk order"
                winner = row
            if note:
                row["reason"] += f" ({note})"
            candidates.append(row)
    return candidates, winner, passed


def _filtered(snapshot, version, calico_version, include, exclude, *, accept=None):
    """FilteredEnumeration: -> (candidates, winner, error)."""
    candidates, winner, passed = _enumerate(snapshot, version, calico_version, include, exclude, accept=accept)
    if passed == 0:
        return candidates, None, "no valid host interfaces found"
    if winner is None:
        return candidates, None, f"no valid IPv{version} addresses found on the host interfaces"
    return candidates, winner, None


def _lookup_exact(snapshot, version, calico_version, wanted, what):
    """The exact IP on any interface, no filters (GetInterfaces(nil, nil) and IP.Equal): -> (candidates, winner)."""
    candidates, winner = [], None
    for link, addrs in _walk(snapshot):
        if not addrs:
            candidates.append(_row(link, None, False, "no addresses"))
        for text, ip, note in _address_rows(addrs, calico_version):
            if ip.version != version:
                reason = f"IPv{ip.version} address, looking for IPv{version}"
            elif winner is not None:
                reason = "not reached: an earlier address was taken"
            elif ip != wanted:
                reason = f"not the {what} {wanted}"
            else:
                reason = None
            row = _row(link, text, reason is None, reason or f"taken: equals the {what} {wanted}")
            if note:
                row["reason"] += f" ({note})"
            winner = row if reason is None else winner
            candidates.append(row)
    return candidates, winner


# --- methods -----------------------------------------------------------------------------------

def _split_method(method):
    """-> (kind, argument) following AutoDetectCIDR's prefix checks, in its order."""
    if method in ("", FIRST_FOUND):
        return FIRST_FOUND, None
    for kind in (INTERFACE, CIDR, CAN_REACH, SKIP_INTERFACE):
        if method.startswith(kind):
            return kind, method[len(kind):]
    # calico-node tests HasPrefix here, so "kubernetes-internal-ipX" is accepted too.
    if method.startswith(K8S_INTERNAL_IP):
        return K8S_INTERNAL_IP, None
    return None, None


def _parse_method(method, calico_version=None):
    """-> (kind, parsed argument, error, error is a not-modelled one); the argument is a regex
    list, a network list or a destination."""
    kind, arg = _split_method(method)
    since = _METHOD_SINCE.get(kind)
    if kind is None or (since and calico_release(calico_version) < since):
        return None, None, f"Invalid IP autodetection method: {method}", False
    if kind in (INTERFACE, SKIP_INTERFACE):
        regexes = split_method_list(arg)
        # GetInterfaces compiles the whole list; for skip-interface= that is the defaults plus these.
        compiled = regexes if kind == INTERFACE else exclusion_list(calico_version) + regexes
        try:
            compile_go_regex_list(compiled, calico_version)
        except RegexNotModelled as e:
            return kind, regexes, str(e), True
        except ValueError as e:
            return kind, regexes, str(e), False
        return kind, regexes, None, False
    if kind == CIDR:
        nets = []
        for text in split_method_list(arg):
            try:
                nets.append(_go_parse_cidr(text))
            except ValueError:
                return kind, None, f'Invalid CIDR "{text}" for IP autodetection method: {method}', False
        return kind, nets, None, False
    return kind, arg, None, False


def validate_method(method, calico_version=None):
    """None if calico-node (of that release) accepts the method string, else its error text.

    Covers what makes calico-node terminate ("Invalid IP autodetection method: ...") and what
    makes detection fail before any interface is looked at (bad regex, bad CIDR). A regex Go
    accepts but this replay cannot reproduce exactly is accepted here (calico-node takes it).
    """
    _kind, _arg, error, not_modelled = _parse_method("" if method is None else str(method), calico_version)
    return None if not_modelled else error


def reach_target(dest, version):
    """How calico-node's ``net.Dial("udp4"|"udp6", JoinHostPort(dest, "80"))`` reads ``dest``:
    ``("address", ip text)`` for an IP literal of the family (an IPv4-mapped literal is IPv4 for
    udp4; no host means the unspecified address, i.e. this node), ``("hostname", dest)`` for a
    name the node's resolver must answer, or ``("error", Go's error text)``."""
    dest = str(dest)
    if "[" in dest or "]" in dest:
        return "error", f"dial udp{version}: address {dest}: brackets in a can-reach destination are not modelled"
    if dest == "":
        return "address", "0.0.0.0" if version == 4 else "::"
    ip = go_parse_ip(dest)
    if ip is None:
        return "hostname", dest
    if version == 4 and _to4(ip) is not None:
        return "address", str(_to4(ip))
    if version == 6 and ip.version == 6 and ip.ipv4_mapped is None:
        return "address", str(ip)
    return "error", f"dial udp{version}: address {dest}: no suitable address found"


def _hostport(address):
    return f"[{address}]:80" if ":" in str(address) else f"{address}:80"


def _reach(route_source, dest, version):
    """What connecting a UDP socket to dest gave on the node -> {"dest", "resolved", "addresses",
    "source", "error"}. ``route_source`` maps dest (or dest -> {version: ...}) to the kernel's
    source address, or to such a record as the facts module builds; or is a callable
    ``(dest, version)`` returning either."""
    record = {"dest": dest, "resolved": None, "addresses": [], "source": None, "error": None}
    kind, value = reach_target(dest, version)
    if kind == "error":
        return {**record, "error": value}
    if kind == "address":
        record.update(resolved=value, addresses=[value])
    try:
        found = route_source(dest, version) if callable(route_source) else (route_source or {}).get(dest)
    except OSError as e:
        reason = (e.strerror or str(e)).lower()
        return {**record, "error": f"dial udp{version} {_hostport(record['resolved'] or dest)}: connect: {reason}"}
    if isinstance(found, dict) and not {"source", "error", "resolved"} & set(found):
        found = found.get(version, found.get(str(version)))
    if isinstance(found, dict):
        record.update({k: found[k] for k in ("resolved", "addresses", "source", "error") if k in found})
    elif found:
        record["source"] = str(found)
    elif kind == "hostname":
        return {**record, "error": f"no resolution supplied for {dest} (resolve it on the node)"}
    else:
        return {**record,
                "error": f"no route-lookup source supplied for {dest} (run `ip route get {dest}` on the node)"}
    if record["error"] or not record["source"]:
        record["error"] = record["error"] or (f"dial udp{version} {_hostport(record['resolved'] or dest)}: connect: "
                                              "network is unreachable")
        return record
    try:
        ip = ipaddress.ip_address(str(record["source"]).split("/", maxsplit=1)[0])
    except ValueError:
        return {**record, "error": f"route-lookup source {record['source']!r} for {dest} is not an IP address"}
    ip = (_to4(ip) or ip) if version == 4 else ip
    if ip.version != version:
        return {**record, "error": f"route-lookup source {ip} for {dest} is not IPv{version}"}
    record["source"] = str(ip)
    return record


def _result(method, version, calico_version, *, valid=True, error=None, winner=None, candidates=(), log=None,
            **extra):
    return {
        "method": method, "version": version, "calico_version": calico_version,
        "valid": valid, "error": error,
        "address": winner["address"] if winner else None,
        "interface": winner["interface"] if winner else None,
        "candidates": list(candidates), "log": log or error, **extra,
    }


_FILTERED_LOGS = {  # (success, failure) lines of AutoDetectCIDR's enumerating methods
    FIRST_FOUND: ("Using autodetected IPv{v} address on interface {i}: {a}",
                  "Unable to auto-detect an IPv{v} address: {e}"),
    SKIP_INTERFACE: ("Using autodetected IPv{v} address on interface {i}: {a} while skipping matching interfaces",
                     "Unable to auto-detect an IPv{v} address while excluding {s}: {e}"),
    INTERFACE: ("Using autodetected IPv{v} address {a} on matching interface {i}",
                "Unable to auto-detect an IPv{v} address using interface regexes {s}: {e}"),
    CIDR: ("Using autodetected IPv{v} address {a} on interface {i} matching cidrs {s}",
           "Unable to auto-detect an IPv{v} address using interface cidr {s}: {e}"),
}


def _replay_filtered(snapshot, parsed, v, calico_version):
    """first-found, skip-interface=, interface= and cidr=: -> result keyword arguments."""
    kind, arg, error, not_modelled = parsed
    ok, bad = _FILTERED_LOGS[kind]
    shown = _go_list(arg or [])
    if error:
        # A bad CIDR is logged on its own; a bad regex surfaces as the enumeration's error.
        return {"valid": not_modelled, "error": error,
                "log": None if kind == CIDR else bad.format(v=v, s=shown, e=error)}
    include, exclude, accept = None, None, None
    if kind == INTERFACE:
        include = arg
    elif kind == CIDR:
        def accept(ip):
            return None if any(ip.version == net.version and ip in net for net in arg) else f"outside cidr {shown}"
    else:
        exclude = exclusion_list(calico_version) + (arg if kind == SKIP_INTERFACE else [])
    candidates, winner, err = _filtered(snapshot, v, calico_version, include, exclude, accept=accept)
    if winner and kind == CIDR:
        winner["reason"] = winner["reason"].replace("in walk order", f"inside {shown}", 1)
    if winner:
        log = ok.format(v=v, i=winner["interface"], a=winner["address"], s=shown)
    else:
        log = bad.format(v=v, s=shown, e=err)
    return {"error": err, "winner": winner, "candidates": candidates, "log": log}


def _replay_can_reach(snapshot, dest, v, calico_version, route_source):
    reach = _reach(route_source, dest, v)
    err, candidates, winner = reach["error"], [], None
    if not err:
        src = ipaddress.ip_address(reach["source"])
        candidates, winner = _lookup_exact(snapshot, v, calico_version, src, "route-lookup source")
        if winner is None:
            err = f"autodetected IPv{v} address does not match any addresses found on local interfaces: {src}"
    if winner:
        log = f"Using autodetected IPv{v} address {winner['address']}, detected by connecting to {dest}"
    else:
        log = f"Unable to auto-detect IPv{v} address by connecting to {dest}: {err}"
    return {"error": err, "winner": winner, "candidates": candidates, "log": log, "reach": reach}


def _replay_k8s_internal_ip(snapshot, v, calico_version, internal_ips):
    if internal_ips is None:
        return {"error": "Cannot use method 'kubernetes-internal-ip' when not running on a Kubernetes cluster"}
    if isinstance(internal_ips, str):
        internal_ips = [internal_ips]
    address, wanted = "", None
    for text in internal_ips:  # the first InternalIP of the family (utils.IsIPv4String / IsIPv6String)
        ip = go_parse_ip(text)
        if ip is not None and (_to4(ip) is not None) == (v == 4):
            address, wanted = str(text), (_to4(ip) if v == 4 else ip)
            break
    candidates, winner = [], None
    if wanted is not None:
        candidates, winner = _lookup_exact(snapshot, v, calico_version, wanted, "InternalIP")
    if winner is None:
        # GetLocalCIDR hands back the bare IP, which then fails CIDR parsing.
        return {"error": f"Unable to parse CIDR {address} : invalid CIDR address: {address}", "candidates": candidates}
    log = f'Including CIDR information from host interface. CIDR="{winner["address"]}"'
    if _k8s_masked(calico_release(calico_version)):
        winner["address"] = str(ipaddress.ip_interface(winner["address"]).network)
        winner["reason"] += " (this Calico release returns the masked network; fixed in v3.22.4 and v3.23.2)"
    return {"winner": winner, "candidates": candidates, "log": log}


def autodetect(snapshot, method="first-found", version=4, *, calico_version=None, route_source=None,
               internal_ips=None):
    """Replay ``IP_AUTODETECTION_METHOD`` (or ``IP6_AUTODETECTION_METHOD``) on a snapshot.

    snapshot: ``{"links": [...], "addresses": [...]}`` as produced by ``_netlink.snapshot()``,
      links in the kernel's dump order.
    calico_version: the Calico release (``"3.24.5"``, ``"v3.24.5"``; ``"3.24"`` means 3.24.0).
    route_source: for ``can-reach=``; a callable ``(dest, version)`` or a dict ``{dest: ...}``
      giving the kernel's source address towards dest (``ip route get``), or a record
      ``{"resolved", "addresses", "source", "error"}`` as the facts module builds it (hostnames
      resolved on the node); a dict value may also be ``{4: ..., 6: ...}``.
    internal_ips: for ``kubernetes-internal-ip``; the k8s Node's InternalIP addresses in
      ``status.addresses`` order, or None when not running on Kubernetes.

    Returns ``{"method", "version", "calico_version", "valid", "error", "address": "ip/prefix" |
    None, "interface", "candidates": [{"interface", "index", "address", "taken", "reason"}],
    "log"}`` (plus ``"reach"`` for can-reach: dest, resolved, addresses, source, error); ``log``
    is the line calico-node would print.
    """
    method = "" if method is None else str(method)
    calico_version = str(calico_version or LATEST_CALICO_VERSION)
    parsed = _parse_method(method, calico_version)
    kind, arg, error, _not_modelled = parsed
    if kind is None:
        outcome = {"valid": False, "error": error}
    elif kind == CAN_REACH:
        outcome = _replay_can_reach(snapshot, arg, version, calico_version, route_source)
    elif kind == K8S_INTERNAL_IP:
        outcome = _replay_k8s_internal_ip(snapshot, version, calico_version, internal_ips)
    else:
        outcome = _replay_filtered(snapshot, parsed, version, calico_version)
    return _result(method, version, calico_version, **outcome)


def snapshot_from_fact_links(links):
    """Rebuild ``{"links", "addresses"}`` from the fact's links (addresses nested, index dropped)."""
    flat_links, addresses = [], []
    for link in links or ():
        flat_links.append({k: v for k, v in link.items() if k != "addresses"})
        addresses.extend({**addr, "index": link["index"]} for addr in link.get("addresses") or ())
    return {"links": flat_links, "addresses": addresses}


def autodetection_fact(snapshot, method_in_use, *, calico_version=None, route_source=None, internal_ips=None,
                       method6_in_use=None, also=(), intended=None, registered=None):
    """The ``autodetection`` part of the ``calico_node`` fact (see docs/development.md).

    Replays the IPv4 method in use, the IPv6 one when ``method6_in_use`` is not None (calico-node
    detects IPv6 only with ``IP6=autodetect``), and the extra IPv4 methods in ``also``.
    """
    kwargs = {"calico_version": calico_version, "route_source": route_source, "internal_ips": internal_ips}
    results = [autodetect(snapshot, method_in_use, 4, **kwargs)]
    if method6_in_use is not None:
        results.append(autodetect(snapshot, method6_in_use, 6, **kwargs))
    results.extend(autodetect(snapshot, m, 4, **kwargs) for m in also)
    return {
        "method_in_use": method_in_use or "",
        "method6_in_use": method6_in_use,
        "calico_version": str(calico_version or LATEST_CALICO_VERSION),
        "intended": intended,
        "registered": registered,
        "results": results,
    }


def operator_form(method):
    """The tigera/operator ``Installation.spec.calicoNetwork.nodeAddressAutodetectionV4`` for a method."""
    kind, arg = _split_method(method or "")
    if kind == FIRST_FOUND:
        return {"firstFound": True}
    if kind == K8S_INTERNAL_IP:
        return {"kubernetes": "NodeInternalIP"}
    if kind == CIDR:
        return {"cidrs": split_method_list(arg)}
    key = {INTERFACE: "interface", SKIP_INTERFACE: "skipInterface", CAN_REACH: "canReach"}.get(kind)
    if key is None:
        raise ValueError(f"Invalid IP autodetection method: {method}")
    return {key: arg}


# --- recommendation --------------------------------------------------------------------------

def go_quote(name):
    """Escape an interface name for use inside an RE2 pattern."""
    return re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", name)


def _ip_only(text):
    return ipaddress.ip_address(str(text).split("/", maxsplit=1)[0])


def _intended_on_node(node, version, calico_version=None):
    """(link name, ip_interface) of the node's intended address as calico-node reads it, or None."""
    wanted = _ip_only(node["intended"])
    wanted = (_to4(wanted) or wanted) if version == 4 else wanted
    release = node.get("calico_version") or calico_version
    for link, addrs in _walk(node["snapshot"]):
        for addr in addrs:
            ip, prefix, _note = calico_cidr(addr, release)
            if ip.version == version and ip == wanted:
                return link["name"], ipaddress.ip_interface(f"{ip}/{prefix}")
    return None


def _replay_on(node, method, version, calico_version):
    return autodetect(node["snapshot"], method, version, calico_version=node.get("calico_version") or calico_version,
                      route_source=node.get("route_source"), internal_ips=node.get("internal_ips"))


def _verify(method, nodes, version, calico_version):
    evidence = []
    for node in nodes:
        res = _replay_on(node, method, version, calico_version)
        hit = res["address"] is not None and _ip_only(res["address"]) == _ip_only(node["intended"])
        evidence.append({"host": node.get("host"), "intended": str(node["intended"]), "address": res["address"],
                         "interface": res["interface"], "ok": hit, "error": res["error"]})
    return all(e["ok"] for e in evidence), evidence


def _skip_list(nodes, version, calico_version):
    """Interfaces that first-found takes before the intended one, gathered over all nodes."""
    skips = []
    for node in nodes:
        for _attempt in range(len(node["snapshot"].get("links") or ()) + 1):
            method = SKIP_INTERFACE + ",".join(skips) if skips else FIRST_FOUND
            res = _replay_on(node, method, version, calico_version)
            if res["address"] is None or _ip_only(res["address"]) == _ip_only(node["intended"]):
                break
            pattern = f"^{go_quote(res['interface'])}$"
            if pattern in skips:
                break
            skips.append(pattern)
    return skips


def _candidate_methods(nodes, version, calico_version, peers):
    """Methods to try, most robust first (a generator: later ones are only built when needed)."""
    if all(node.get("internal_ips") for node in nodes):
        yield K8S_INTERNAL_IP
    local = [_intended_on_node(node, version, calico_version) for node in nodes]
    nets = ipaddress.collapse_addresses({iface.network for _name, iface in local})
    yield CIDR + ",".join(str(n) for n in nets)
    names = {name for name, _iface in local}
    if len(names) == 1:
        yield f"{INTERFACE}^{go_quote(names.pop())}$"
    skips = _skip_list(nodes, version, calico_version)
    if skips:
        yield SKIP_INTERFACE + ",".join(skips)
    for peer in peers or ():
        yield CAN_REACH + str(peer)


def recommend_method(nodes, version=4, *, calico_version=None, peers=None):
    """Find one autodetection method that picks every node's intended address.

    nodes: ``[{"host", "snapshot": {"links", "addresses"}, "intended": "ip[/len]",
    "internal_ips": [...] (optional), "route_source": dict | callable (optional, for can-reach),
    "calico_version": (optional, per node)}]``; peers: can-reach destinations to try, in order.

    Candidates, most robust first: ``kubernetes-internal-ip`` (when every node has InternalIPs),
    ``cidr=`` of the intended addresses' subnets (collapsed), ``interface=^name$`` (when every
    node carries its intended address on the same name), ``skip-interface=`` of the interfaces
    that win wrongly, ``can-reach=<peer>``. Each is replayed on every node. Returns ``{"method": str | None,
    "reason", "evidence": [{"host", "intended", "address", "interface", "ok", "error"}],
    "tried": [{"method", "ok", "failed_hosts"}]}``.
    """
    if not nodes:
        return {"method": None, "reason": "no nodes given", "evidence": [], "tried": []}
    missing = [str(node.get("host")) for node in nodes if _intended_on_node(node, version, calico_version) is None]
    if missing:
        return {"method": None, "evidence": [], "tried": [],
                "reason": f"the intended address is on no interface of {', '.join(missing)}: no autodetection "
                          "method can pick it; pin IP=<address> there or add the address first"}
    tried = []
    for method in _candidate_methods(nodes, version, calico_version, peers):
        ok, evidence = _verify(method, nodes, version, calico_version)
        tried.append({"method": method, "ok": ok, "failed_hosts": [e["host"] for e in evidence if not e["ok"]]})
        if ok:
            return {"method": method, "evidence": evidence, "tried": tried,
                    "reason": f"replayed on all {len(nodes)} node(s): it picks the intended address on every one"}
    return {"method": None, "evidence": [], "tried": tried,
            "reason": "no single method picks the intended address on every node (see tried); pin IP=<address> "
                      "per node or remove the conflicting addresses"}
