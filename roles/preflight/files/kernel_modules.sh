#!/bin/sh
# Copyright: netdoctor.calico contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Read-only: where the running kernel has each module, looked up the way `calicoctl node checksystem`
# does - /sys/module, /proc/modules (lsmod), modules.builtin, modules.dep, then the kernel's .config
# (also /proc/config.gz, the running kernel's own). Arguments: NAME=CONFIG_OPTION ...
# Prints one JSON object: {"release", "modules_supported", "sources": [...], "modules": {NAME: {"status",
# "evidence"}}}. status: present (seen in the running kernel: loaded, or built in with a /sys/module
# entry), builtin, loadable, missing, or unknown (no source could tell).
set -u
release=$(uname -r)
moddir=/lib/modules/$release
supported=false
[ -e /proc/modules ] && supported=true

config=""
for f in /boot/config-"$release" /usr/src/linux/.config /usr/src/linux-"$release"/.config \
         /usr/src/linux-headers-"$release"/.config "$moddir"/build/.config; do
    if [ -r "$f" ]; then config=$f; break; fi
done
tmp=""
if [ -z "$config" ] && [ -r /proc/config.gz ] && command -v gzip >/dev/null 2>&1; then
    tmp=$(mktemp) || exit 1
    trap 'rm -f "$tmp"' EXIT
    if gzip -dc /proc/config.gz > "$tmp" 2>/dev/null; then config=/proc/config.gz; else rm -f "$tmp"; tmp=""; fi
fi
config_file=${tmp:-$config}

sources=""
add_source() { sources="$sources${sources:+,}\"$1\""; }
[ -d /sys/module ] && add_source /sys/module
$supported && add_source /proc/modules
[ -r "$moddir/modules.builtin" ] && add_source "$moddir/modules.builtin"
[ -r "$moddir/modules.dep" ] && add_source "$moddir/modules.dep"
[ -n "$config" ] && add_source "$config"

# ko_pattern NAME: a basic regex for NAME's object file, - and _ interchangeable (as modprobe treats them)
ko_pattern() { printf '%s' "$1" | sed 's/[-_]/[-_]/g'; }

status_of() {
    name=$1 option=$2
    sysname=$(printf '%s' "$name" | tr - _)
    if [ -e "/sys/module/$sysname" ]; then echo "present /sys/module/$sysname"; return; fi
    if $supported && grep -q "^$sysname " /proc/modules; then echo "present /proc/modules"; return; fi
    pat=$(ko_pattern "$name")
    if [ -r "$moddir/modules.builtin" ] && grep -q "/$pat\.ko$" "$moddir/modules.builtin"; then
        echo "builtin $moddir/modules.builtin"; return
    fi
    if [ -r "$moddir/modules.dep" ] && grep -q "/$pat\.ko\(\.gz\|\.xz\|\.zst\|\.bz2\)\{0,1\}:" "$moddir/modules.dep"; then
        echo "loadable $moddir/modules.dep"; return
    fi
    if [ -n "$config_file" ]; then
        case $(grep -m1 "^$option=\|^# $option is not set" "$config_file") in
            "$option=y") echo "builtin $config: $option=y"; return ;;
            "$option=m") echo "loadable $config: $option=m"; return ;;
            *) echo "missing $config: $option not set"; return ;;
        esac
    fi
    if [ -r "$moddir/modules.dep" ]; then echo "missing not in $moddir/modules.dep or modules.builtin"; return; fi
    echo "unknown no modules.dep, modules.builtin or kernel config to look it up in"
}

printf '{"release": "%s", "modules_supported": %s, "sources": [%s], "modules": {' "$release" "$supported" "$sources"
sep=""
for arg in "$@"; do
    name=${arg%%=*} option=${arg#*=}
    case $name$option in *[!A-Za-z0-9_-]*) echo "invalid argument: $arg" >&2; exit 2 ;; esac
    result=$(status_of "$name" "$option")
    printf '%s"%s": {"status": "%s", "evidence": "%s"}' "$sep" "$name" "${result%% *}" "${result#* }"
    sep=", "
done
printf '}}\n'
