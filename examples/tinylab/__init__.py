"""tinylab — a pack of one director, one real and a client, and one check: the tutorial of
docs/write-a-pack.md (tests/test_howto_write_a_pack.py runs it). Put this folder on PYTHONPATH and
name it with ``--pack tinylab``; its Vagrantfile is the lab, test_tinylab.py the checks."""

from pathlib import Path
from lvs_harness.packs import Pack

SERVER = (
    "ruby -rsocket -e 's = TCPServer.new(\"0.0.0.0\", 80); loop { c = s.accept; "
    "while (l = c.gets) && l != \"\\r\\n\"; end; b = File.read(\"/var/www/html/index.html\"); "
    "c.write(\"HTTP/1.0 200 OK\\r\\nContent-Length: #{b.bytesize}\\r\\n\\r\\n#{b}\"); c.close }'"
)

PACK = Pack(
    name="tinylab",
    title="Tiny lab",
    suite=__name__,  # this package's test_*.py are the checks
    reference=Path(__file__).with_name("Vagrantfile"),
    directors=("lb1",),  # a write-up hands in lb1's keepalived.conf
    roles={"director": ("lb*",), "real": ("web*",), "client": ("client*",)},
    daemons={"real": ("pages",), "director": ("keepalived",)},
    units={"pages": SERVER},  # a daemon of the pack's own: no nginx here
)
