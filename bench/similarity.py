"""How copy detection scales, and what it finds, on a generated cohort.

Writes N hw3.8 write-ups, each its own design (subnet, VIP, host names, router id, secret,
priorities, algorithm, weights, health check, script, timers drawn at random from what students
write), plants C copies (another student's write-up renumbered, renamed, reordered and recommented),
then reads every one (``load_submission``), fingerprints it and compares the cohort
(``similarity.pairs``). Prints the time of each step and the pairs found against the planted ones.

    .venv/bin/python bench/similarity.py --n 500 --copies 10
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lvs_harness import similarity  # noqa: E402
from lvs_harness.grading import fingerprint_of  # noqa: E402
from lvs_harness.packs import load_pack  # noqa: E402

NAMES = [
    ("balancer", "server"),
    ("lb", "web"),
    ("dir", "real"),
    ("netology", "netology"),
    ("bal", "srv"),
    ("director", "node"),
    ("lvs", "backend"),
]


def design(rng: random.Random) -> dict:
    d, r = rng.choice(NAMES)
    sep = rng.choice(["", "-", "0"])
    net = rng.choice(
        ["172.28.128", f"192.168.{rng.randint(1, 250)}", f"10.{rng.randint(0, 250)}.{rng.randint(0, 250)}"]
    )
    octets = rng.sample(range(10, 250), 5)
    return {
        "d": [f"{d}{sep}1", f"{d}{sep}2"],
        "r": [f"{r}{sep}a" if d == r else f"{r}{sep}1", f"{r}{sep}b" if d == r else f"{r}{sep}2"],
        "net": net,
        "vip": octets[0],
        "reals": octets[1:3],
        "vrid": rng.randint(1, 255),
        "secret": rng.choice(["netology", "secret", "pass123", "qwerty"]) + str(rng.randint(0, 999)),
        "prio": sorted(rng.sample(range(50, 255), 2), reverse=True),
        "algo": rng.choice(["rr", "wrr", "lc"]),
        "weights": [rng.randint(1, 3), rng.randint(1, 3)],
        "check": rng.choice(["TCP_CHECK", "HTTP_GET"]),
        "timeout": rng.randint(1, 5),
        "delay": rng.randint(2, 10),
        "advert": rng.choice([1, 1, 2]),
        "iface": rng.choice(["eth1", "eth1", "enp0s8", "eth0"]),
        "script": rng.choice([None, "killall -0 nginx", "systemctl is-active nginx", "curl -sf http://127.0.0.1/"]),
        "mask": rng.choice(["/32", "/24", ""]),
    }


def config(x: dict, i: int, rng: random.Random, shuffle: bool = False) -> str:
    net, vip = x["net"], f"{x['net']}.{x['vip']}"
    check = (
        "TCP_CHECK {\n            connect_timeout %d\n        }" % x["timeout"]
        if x["check"] == "TCP_CHECK"
        else "HTTP_GET {\n            url {\n                path /\n                status_code 200\n            }\n"
        "            connect_timeout %d\n        }" % x["timeout"]
    )
    reals = "".join(
        f"    real_server {net}.{o} 80 {{\n        weight {w}\n        {check}\n    }}\n"
        for o, w in zip(x["reals"], x["weights"])
    )
    script = f'vrrp_script chk_web {{\n    script "{x["script"]}"\n    interval 2\n}}\n' if x["script"] else ""
    track = "    track_script {\n        chk_web\n    }\n" if x["script"] else ""
    blocks = [
        f"global_defs {{\n    router_id {x['d'][i]}\n}}\n",
        script,
        f"vrrp_instance VI_{x['vrid']} {{\n    state {'MASTER' if i == 0 else 'BACKUP'}\n    interface {x['iface']}\n"
        f"    virtual_router_id {x['vrid']}\n    priority {x['prio'][i]}\n    advert_int {x['advert']}\n"
        f"    authentication {{\n        auth_type PASS\n        auth_pass {x['secret']}\n    }}\n"
        f"    virtual_ipaddress {{\n        {vip}{x['mask']}\n    }}\n{track}}}\n",
        f"virtual_server {vip} 80 {{\n    delay_loop {x['delay']}\n    lb_algo {x['algo']}\n    lb_kind DR\n"
        f"    protocol TCP\n{reals}}}\n",
    ]
    if shuffle:
        rng.shuffle(blocks)
        return "".join(f"# {rng.choice(['mine', 'config', 'see above'])}\n" + b.replace("    ", "  ") for b in blocks)
    return "".join(blocks)


def writeup(x: dict, rng: random.Random, shuffle: bool = False) -> str:
    vip = f"{x['net']}.{x['vip']}"
    reals = "".join(
        f"root@{name}:~# ip addr add {vip}/32 dev lo\nroot@{name}:~# sysctl -w net.ipv4.conf.all."
        f"arp_ignore=1\nroot@{name}:~# sysctl -w net.ipv4.conf.all.arp_announce=2\n"
        for name in x["r"]
    )
    return (
        f"# hw3.8\n\nDirectors {x['d'][0]}, {x['d'][1]}; reals {x['r'][0]}, {x['r'][1]}; VIP {vip}.\n\n"
        f"On the reals:\n\n```\n{reals}```\n\n"
        + "".join(f"keepalived on {x['d'][i]}:\n\n```\n{config(x, i, rng, shuffle)}```\n\n" for i in (0, 1))
    )


def renumber(x: dict, rng: random.Random) -> dict:
    """What a copier changes: the subnet and the names (the design itself is the same)."""
    y = dict(x)
    y["net"] = f"192.168.{rng.randint(1, 250)}"
    d, r = rng.choice(NAMES)
    y["d"], y["r"] = [f"{d}-{k}" for k in "xy"], [f"{r}-{k}" for k in "xy"]
    return y


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--copies", type=int, default=10)
    ap.add_argument("--seed", type=int, default=38)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    pack = load_pack("hw38")
    with tempfile.TemporaryDirectory() as tmp:
        designs = [design(rng) for _ in range(args.n - args.copies)]
        paths = []
        for k, x in enumerate(designs):
            paths.append(Path(tmp) / f"s{k:03d}.md")
            paths[-1].write_text(writeup(x, rng))
        planted = set()
        for k in range(args.copies):
            src = rng.randrange(len(designs))
            paths.append(Path(tmp) / f"copy{k:02d}-of-s{src:03d}.md")
            paths[-1].write_text(writeup(renumber(designs[src], rng), rng, shuffle=True))
            planted.add(frozenset((paths[-1].stem, f"s{src:03d}")))
        t0 = time.perf_counter()
        entries = [{"submission": p.stem, "fingerprint": fingerprint_of(p, pack)} for p in paths]
        t1 = time.perf_counter()
        found = similarity.pairs(entries)
        t2 = time.perf_counter()
    got = {frozenset((p["a"], p["b"])) for p in found}
    print(
        f"{args.n} write-ups ({args.copies} planted copies): read + fingerprint {t1 - t0:.2f} s "
        f"({(t1 - t0) / args.n * 1000:.1f} ms each), compare {t2 - t1:.3f} s"
    )
    print(
        f"flagged {len(got)} pair(s): {len(got & planted)} of {len(planted)} planted copies found, "
        f"{len(got - planted)} other pair(s)"
    )
    for p in found:
        if frozenset((p["a"], p["b"])) not in planted:
            print(f"  not planted: {p['a']} ~ {p['b']} {p['score']}")
    empty = sum(not e["fingerprint"] for e in entries)
    if empty:
        print(f"  {empty} write-up(s) gave no fingerprint")


if __name__ == "__main__":
    main()
