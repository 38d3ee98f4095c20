#!/usr/bin/env python3
"""Writes the seed corpus under fuzz/corpus/<target>/ (deterministic).

Run from anywhere: python3 fuzz/make_seeds.py. Existing seed files of the
same name are overwritten; nothing else in the folders is touched.
"""

import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))

# What irssi 1.4 sends on connect, in its order, against a password tracker.
IRSSI = (
    b"CAP LS 302\r\n"
    b"JOIN :\r\n"
    b"PASS x\r\n"
    b"NICK n\r\n"
    b"USER u 0 * :r\r\n"
)
IRSSI_CAPS = (
    b"CAP LS 302\r\n"
    b"JOIN :\r\n"
    b"PASS two words\r\n"
    b"NICK alice\r\n"
    b"USER alice alice localhost :Alice A\r\n"
    b"CAP REQ :away-notify message-tags server-time\r\n"
    b"CAP END\r\n"
)

PARSE_LINE = {
    "irssi_burst": IRSSI,
    "irssi_caps": IRSSI_CAPS,
    "tags_full": b"@time=2020-01-01T00:00:00.000Z;+draft/reply=abc;+x=a\\sb\\:c\\\\d\\r\\n :nick!u@h PRIVMSG #general :hello there\r\n",
    "tags_dup_empty": b"@a;a=1;+b=;c=\\;; :s TAGMSG #g\r\n",
    "tags_only": b"@a=b\r\n",
    "tag_trailing_backslash": b"@k=v\\ CMD x\r\n",
    "source_only": b":src\r\n",
    "numeric": b":fuzz.tracker 001 alice :Welcome to confab, alice\r\n",
    "numeric_bad": b"12 x\r\n1234 y\r\nPRIV-MSG z\r\n",
    "lowercase_spaces": b"   privmsg   bob    hi   there\r\n",
    "empty_trailing": b"USER a 0 * :\r\nAWAY :\r\nPART #g :\r\n",
    "colon_params": b"PRIVMSG #g ::)\r\nX :a b :c\r\n",
    "params_15": b"CMD " + b" ".join(b"p%d" % i for i in range(15)) + b"\r\n",
    "params_16": b"CMD " + b" ".join(b"p%d" % i for i in range(16)) + b"\r\n",
    "unicode": "PRIVMSG #général :héllo 漢字 😀 \u0001ACTION waves\u0001\r\n".encode(),
    "invalid_utf8": b"PRIVMSG #g :\xff\xfe\xc3\r\nPING x\r\n",
    "nul_bytes": b"NICK a\x00b\r\nPRIVMSG #g :x\x00y\r\n\x00\r\n",
    "cr_inside": b"NICK a\rb\r\nQUIT x\r\r\nPING\n",
    "bare_lf_and_blank": b"NICK a\n\n\r\n\r\nUSER a 0 * :A\nPING x",
    "body_510": b"PRIVMSG #g :" + b"a" * 498 + b"\r\n",
    "body_511": b"PRIVMSG #g :" + b"a" * 499 + b"\r\nPING after\r\n",
    "tags_8190": b"@+a=" + b"t" * 8186 + b" PING x\r\n",
    "tags_8191": b"@+a=" + b"t" * 8187 + b" PING x\r\n",
    # LineCodec::new(): 4094 bytes of tag data from a client.
    "client_tags_4094": b"@+a=" + b"t" * 4091 + b" PING x\r\n@+a=" + b"t" * 4092 + b" PING y\r\n",
    "tags_escapes_separators": "@+x=\x1b[31mred\\s\u2028\u202e;+y=\t\x07\\:\\\\ PRIVMSG #g :a\u2028b\u2029c\u200b\ufeff\r\n".encode(),
    "oversize_unterminated": b"x" * 9000,
    # LineCodec::from_server(): 4096-byte bodies, 8191 + 4096 before discarding.
    "server_body_4094": b":n!u@h PRIVMSG #g :" + b"s" * (4094 - 19) + b"\r\n:n!u@h PRIVMSG #g :" + b"s" * (4095 - 19) + b"\r\n",
    "server_oversize_unterminated": b"@" + b"w" * 12400,
    "oversize_then_line": b"@" + b"y" * 9000 + b"\r\nPING z\r\n",
}

# Byte 0 is the scenario for the registration target (see its header):
# bit 0 EOF after sending, bit 1 flood control, bits 2-3 pacing,
# bit 4 small duplex.
REG = {
    "irssi_open": (0x00, IRSSI),
    "irssi_eof": (0x01, IRSSI),
    "irssi_caps_flood": (0x02, IRSSI_CAPS),
    "irssi_caps_chunked": (0x04, IRSSI_CAPS),
    "irssi_paced": (0x08, IRSSI),
    "irssi_small_duplex": (0x11, IRSSI_CAPS),
    "cap_no_end": (0x00, b"CAP LS 302\r\nNICK n\r\nUSER u 0 * :r\r\n"),
    "cap_req_nak_list": (0x01, b"CAP LS\r\nCAP REQ :sasl server-time\r\nCAP REQ :-away-notify echo-message\r\nCAP LIST\r\nCAP FOO\r\nCAP\r\nCAP END\r\n"),
    "nick_taken_retry": (0x00, b"NICK taken\r\nUSER u 0 * :r\r\nNICK bob\r\nPRIVMSG #general :hi\r\n"),
    "nick_down": (0x00, b"USER u 0 * :r\r\nNICK down\r\n"),
    "nick_invalid": (0x01, b"NICK\r\nNICK :\r\nNICK 9lives\r\nNICK " + b"a" * 40 + b"\r\nNICK ok\r\nUSER u 0 * :r\r\n"),
    "user_short_pass_empty": (0x01, b"PASS\r\nUSER u 0\r\nUSER !!! 0 * :\x1b[31mred\r\nNICK n\r\n"),
    "unregistered_cmds": (0x01, b"JOIN #g\r\nPRIVMSG #g :x\r\nPING tok\r\nPONG x\r\nWHO *\r\n"),
    "quit_unregistered": (0x00, b"NICK n\r\nQUIT :bye\r\nNICK m\r\n"),
    "quit_registered": (0x00, b"NICK n\r\nUSER u 0 * :r\r\nQUIT :bye\r\nPRIVMSG #g :late\r\n"),
    "kill_after_welcome": (0x10, b"NICK n\r\nUSER u 0 * :r\r\nPRIVMSG #g :" + b"x" * 300 + b"\r\nKILL\r\nPRIVMSG #g :y\r\n"),
    "die_after_welcome": (0x00, b"NICK n\r\nUSER u 0 * :r\r\nPRIVMSG #g :a\r\nDIE\r\n"),
    "bad_lines_registered": (0x01, b"NICK n\r\nUSER u 0 * :r\r\n\xff\xfe\r\n12 x\r\n@a=b\r\n" + b"P" * 600 + b"\r\n"),
    "bad_lines_unregistered": (0x00, b"\xff\xfe\r\n12 x\r\n@bad$ CMD\r\n" + b"P" * 600 + b"\r\nPRI\x00VMSG\r\n"),
    "flood_excess": (0x02, b"NICK n\r\nUSER u 0 * :r\r\n" + b"PRIVMSG #g :f\r\n" * 220),
    "flood_pings": (0x03, b"NICK n\r\nUSER u 0 * :r\r\n" + b"PING x\r\nPRIVMSG #g :f\r\n" * 12),
    "oversize_unterminated": (0x01, b"NICK n\r\n" + b"z" * 9000),
    "long_params": (0x00, b"PRIVMSG #g :" + b"x" * 480 + b"\r\nNICK n\r\nUSER u 0 * :r\r\nPRIVMSG #g :" + b"y" * 480 + b"\r\n"),
    "tags_relayed": (0x00, b"NICK n\r\nUSER u 0 * :r\r\n@+a=" + b"t" * 4091 + b" PRIVMSG #g :at\r\n@+a=" + b"t" * 4092 + b" PRIVMSG #g :over\r\n" + "@+x=\x1b[2J\u2028\u202e\t;+y=\\s\\: PRIVMSG #g :esc\r\nCAP REQ :\x1b]0\x07x\u2028\r\n".encode()),
    "tags_registration": (0x04, b"@label=1 CAP LS 302\r\n@+x=y :me NICK n\r\n:me USER u 0 * :r\r\nCAP END\r\n"),
}


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main():
    for name, data in PARSE_LINE.items():
        write("parse_line", name, data)
    for name, (mode, data) in REG.items():
        write("registration", name, bytes([mode]) + data)
    # roundtrip takes `arbitrary`-structured input; a few byte strings are
    # enough to start from (libFuzzer grows them).
    for i, data in enumerate(
        [
            IRSSI_CAPS,
            PARSE_LINE["tags_full"],
            struct.pack("<16B", *range(16)) * 4,
        ]
    ):
        write("roundtrip", "seed%d" % i, data)


if __name__ == "__main__":
    main()
