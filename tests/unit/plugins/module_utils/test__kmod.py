"""_kmod: where the running kernel has each module (calico_node_facts' kernel_modules option), read
from fixture trees in a tmp dir - /sys/module, /proc/modules, modules.builtin, modules.dep, a kernel
.config and /proc/config.gz - and once from this machine's own root, read-only. It replaces the
preflight role's kernel_modules.sh; its assertions are kept here."""

import gzip
import os

import pytest
from ansible_collections.netdoctor.calico.plugins.module_utils import _kmod

RELEASE = "6.1.0-nd-amd64"
MODDIR = f"lib/modules/{RELEASE}"


def tree(root, *, sys_module=(), proc_modules=None, builtin=None, dep=None, config=None, config_at="boot",
         proc_config=None):
    """A kernel's module sources under ``root``; None leaves a source out."""
    if sys_module is not None:
        os.makedirs(root / "sys" / "module", exist_ok=True)
        for name in sys_module:
            (root / "sys" / "module" / name).mkdir()
    if proc_modules is not None:
        (root / "proc").mkdir(exist_ok=True)
        (root / "proc" / "modules").write_text(proc_modules)
    (root / MODDIR).mkdir(parents=True, exist_ok=True)
    if builtin is not None:
        (root / MODDIR / "modules.builtin").write_text(builtin)
    if dep is not None:
        (root / MODDIR / "modules.dep").write_text(dep)
    if config is not None:
        path = {"boot": root / "boot" / f"config-{RELEASE}", "build": root / MODDIR / "build" / ".config"}[config_at]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(config)
    if proc_config is not None:
        (root / "proc").mkdir(exist_ok=True)
        (root / "proc" / "config.gz").write_bytes(proc_config)
    return str(root)


PROC_MODULES = "ip_tables 36864 0 - Live 0x0000000000000000\nxt_conntrack 16384 2 - Live 0x0\n"
BUILTIN = "kernel/net/netfilter/xt_mark.ko\nkernel/net/ipv4/netfilter/ipt_REJECT.ko\n"
DEP = ("kernel/net/netfilter/ipset/ip_set.ko.xz: kernel/net/netfilter/nfnetlink.ko.xz\n"
       "kernel/net/ipv4/ipip.ko.zst: kernel/net/ipv4/ip_tunnel.ko.zst\n"
       "kernel/drivers/vfio/pci/vfio-pci.ko:\n"
       "kernel/net/netfilter/nfnetlink.ko.xz:\n")
CONFIG = ("CONFIG_IP_NF_IPTABLES=y\nCONFIG_VXLAN=m\n# CONFIG_WIREGUARD is not set\nCONFIG_NET_IPIP=m\n"
          "CONFIG_VXLAN=y\n")


def entry(*names, config="CONFIG_X", optional=False):
    return {"names": list(names), "config": config, "optional": optional}


def statuses(fact):
    return {name: (m["status"], m["evidence"]) for name, m in fact["modules"].items()}


def test_every_source_in_the_order_checksystem_reads_them(tmp_path):
    root = tree(tmp_path, sys_module=["ip_set", "nf_conntrack"], proc_modules=PROC_MODULES, builtin=BUILTIN,
                dep=DEP, config=CONFIG)
    fact = _kmod.scan([entry("ip_set"), entry("xt_conntrack"), entry("xt_mark"), entry("ipip"),
                       entry("vxlan", config="CONFIG_VXLAN"), entry("wireguard", config="CONFIG_WIREGUARD"),
                       entry("xt_bpf", config="CONFIG_NETFILTER_XT_MATCH_BPF")], root=root, release=RELEASE)
    boot = f"/boot/config-{RELEASE}"
    assert statuses(fact) == {
        "ip_set": ("present", "/sys/module/ip_set"),                  # /sys/module wins over modules.dep
        "xt_conntrack": ("present", "/proc/modules"),
        "xt_mark": ("builtin", f"/lib/modules/{RELEASE}/modules.builtin"),
        "ipip": ("loadable", f"/lib/modules/{RELEASE}/modules.dep"),  # .ko.zst counts
        "vxlan": ("loadable", f"{boot}: CONFIG_VXLAN=m"),            # the first line about an option counts
        "wireguard": ("missing", f"{boot}: CONFIG_WIREGUARD not set"),
        "xt_bpf": ("missing", f"{boot}: CONFIG_NETFILTER_XT_MATCH_BPF not set"),
    }
    assert fact["release"] == RELEASE
    assert fact["modules_supported"] is True
    assert fact["sources"] == ["/sys/module", "/proc/modules", f"/lib/modules/{RELEASE}/modules.builtin",
                               f"/lib/modules/{RELEASE}/modules.dep", boot]


def test_dash_and_underscore_are_one_name(tmp_path):
    # modprobe treats - and _ alike: vfio-pci is vfio_pci in /sys/module, and either spelling finds either file.
    root = tree(tmp_path, sys_module=["vfio_pci"], proc_modules="", builtin="kernel/x/xt-u32.ko\n", dep=DEP)
    fact = _kmod.scan([entry("vfio-pci"), entry("xt_u32"), entry("vfio_pci")], root=root, release=RELEASE)
    assert statuses(fact) == {"vfio-pci": ("present", "/sys/module/vfio_pci"),
                              "xt_u32": ("builtin", f"/lib/modules/{RELEASE}/modules.builtin"),
                              "vfio_pci": ("present", "/sys/module/vfio_pci")}


def test_an_object_without_a_directory_is_not_a_match(tmp_path):
    # the lookup wants ".../name.ko": a bare name.ko line, or a dependency after the colon, is not the module itself
    root = tree(tmp_path, proc_modules="", builtin="xt_mark.ko\n",
                dep="kernel/a/nfnetlink.ko: kernel/net/netfilter/xt_set.ko\n")
    fact = _kmod.scan([entry("xt_mark"), entry("xt_set")], root=root, release=RELEASE)
    assert statuses(fact) == {name: ("missing", f"not in /lib/modules/{RELEASE}/modules.dep or modules.builtin")
                              for name in ("xt_mark", "xt_set")}


def test_the_running_kernels_own_config_gz_when_no_config_file(tmp_path):
    root = tree(tmp_path, proc_modules="", proc_config=gzip.compress(CONFIG.encode()))
    fact = _kmod.scan([entry("ip_tables", config="CONFIG_IP_NF_IPTABLES"), entry("ipip", config="CONFIG_NET_IPIP"),
                       entry("wireguard", config="CONFIG_WIREGUARD")], root=root, release=RELEASE)
    assert statuses(fact) == {"ip_tables": ("builtin", "/proc/config.gz: CONFIG_IP_NF_IPTABLES=y"),
                              "ipip": ("loadable", "/proc/config.gz: CONFIG_NET_IPIP=m"),
                              "wireguard": ("missing", "/proc/config.gz: CONFIG_WIREGUARD not set")}
    assert fact["sources"] == ["/sys/module", "/proc/modules", "/proc/config.gz"]


def test_a_config_file_wins_over_config_gz_and_a_torn_config_gz_is_no_source(tmp_path):
    root = tree(tmp_path, proc_modules="", config="CONFIG_VXLAN=m\n", config_at="build",
                proc_config=gzip.compress(b"CONFIG_VXLAN=y\n"))
    fact = _kmod.scan([entry("vxlan", config="CONFIG_VXLAN")], root=root, release=RELEASE)
    assert statuses(fact)["vxlan"] == ("loadable", f"/lib/modules/{RELEASE}/build/.config: CONFIG_VXLAN=m")

    torn = tree(tmp_path / "torn", proc_modules="", proc_config=gzip.compress(b"CONFIG_VXLAN=y\n" * 50)[:30])
    fact = _kmod.scan([entry("vxlan", config="CONFIG_VXLAN")], root=torn, release=RELEASE)
    assert statuses(fact)["vxlan"] == ("unknown", "no modules.dep, modules.builtin or kernel config to look it up in")
    assert "/proc/config.gz" not in fact["sources"]


def test_nothing_to_tell_from_is_unknown_and_no_proc_modules_means_no_module_support(tmp_path):
    # A kernel without loadable module support has no /proc/modules: /sys/module still tells what is built in.
    root = tree(tmp_path, sys_module=["ip_tables"])
    fact = _kmod.scan([entry("ip_tables"), entry("ip_set")], root=root, release=RELEASE)
    assert fact["modules_supported"] is False
    assert statuses(fact) == {
        "ip_tables": ("present", "/sys/module/ip_tables"),
        "ip_set": ("unknown", "no modules.dep, modules.builtin or kernel config to look it up in")}
    assert fact["sources"] == ["/sys/module"]
    # /proc/modules is not read when the kernel cannot load modules (a stray file there says nothing)
    stray = {**_kmod.read_sources(root, RELEASE), "loaded": {"ip_set"}}
    assert _kmod.module_status("ip_set", "CONFIG_IP_SET", stray)[0] == "unknown"


def test_an_entry_takes_its_best_name_and_names_the_module_to_load(tmp_path):
    root = tree(tmp_path, proc_modules="xt_REJECT 16384 0 - Live 0x0\n", dep=DEP, config=CONFIG)
    fact = _kmod.scan([entry("ipt_REJECT", "xt_REJECT", config="CONFIG_IP_NF_TARGET_REJECT"),
                       entry("nope_a", "ip_set", config="CONFIG_IP_SET"),
                       entry("ip6_tables", config="CONFIG_IP6_NF_IPTABLES", optional=True),
                       entry("nope_b", "nope_c", config="CONFIG_NOPE")], root=root, release=RELEASE)
    assert [(e["status"], e["name"], e["optional"]) for e in fact["entries"]] == [
        ("present", "xt_REJECT", False), ("loadable", "ip_set", False), ("missing", "ip6_tables", True),
        ("missing", "nope_b", False)]
    assert fact["entries"][1] == {"names": ["nope_a", "ip_set"], "config": "CONFIG_IP_SET", "optional": False,
                                  "status": "loadable", "name": "ip_set",
                                  "evidence": f"/lib/modules/{RELEASE}/modules.dep"}


@pytest.mark.parametrize(("entries", "message"), [
    ([entry("ip_set;reboot", config="CONFIG_IP_SET")], "entry 1: module name 'ip_set;reboot' is not letters"),
    ([entry("ip_set", config="CONFIG_IP_SET;reboot")], "entry 1: config 'CONFIG_IP_SET;reboot' is not a kernel option"),
    ([entry("ip_set", config="ip_set")], "entry 1: config 'ip_set' is not a kernel option"),
    ([{"config": "CONFIG_IP_SET"}], "entry 1 has no names"),
    ([entry("ip_set", config="CONFIG_IP_SET"), {"names": [], "config": "CONFIG_X"}], "entry 2 has no names"),
    ([entry("../../etc", config="CONFIG_X")], "module name '../../etc'"),
    (["ip_set"], "entry 1 is not a dict"),
])
def test_odd_entries_are_refused_before_anything_is_read(tmp_path, entries, message):
    assert any(message in e for e in _kmod.entry_errors(entries)), _kmod.entry_errors(entries)
    with pytest.raises(ValueError, match="entry"):
        _kmod.scan(entries, root=str(tmp_path / "nothing-here"))


def test_scan_of_this_machine_matches_its_running_kernel():
    """Read-only, on the real root: a module /sys/module lists is present, a name no kernel has is
    missing when an index or config can tell and honestly unknown otherwise."""
    present = sorted(os.listdir("/sys/module"))[:1] if os.path.isdir("/sys/module") else []
    fact = _kmod.scan([entry(*present, "nd_no_such_module"), entry("nd_no_such_module", config="CONFIG_ND_NO_SUCH")])
    assert fact["release"] == os.uname().release
    assert fact["modules_supported"] == os.path.exists("/proc/modules")
    if present:
        assert fact["modules"][present[0]] == {"status": "present", "evidence": f"/sys/module/{present[0]}"}
        assert fact["entries"][0]["name"] == present[0]
    can_tell = [s for s in fact["sources"] if s not in ("/sys/module", "/proc/modules")]
    assert fact["modules"]["nd_no_such_module"]["status"] == ("missing" if can_tell else "unknown")
