#!/bin/sh
# escapewatch vm-test guest: /init of the initramfs the xtask builds (busybox sh, PID 1).
# Stage 1 moves the root onto a tmpfs (runc's pivot_root refuses the initramfs rootfs), stage 2
# mounts what the agent and runc need, runs each selected test binary once per test and
# reports one machine-readable line per test on the console, then powers off.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin LD_LIBRARY_PATH=/lib/x86_64-linux-gnu HOME=/root

if [ "$1" != stage2 ]; then
    mkdir -p /newroot
    mount -t tmpfs -o mode=755 tmpfs /newroot
    # Everything the xtask staged, wherever the checkout lives (the tests find their files at
    # the host's absolute paths, compiled in): all of / but the kernel's own mounts.
    for d in /*; do
        case "$d" in
        /proc | /sys | /dev | /newroot) ;;
        *) cp -a "$d" /newroot/ ;;
        esac
    done
    mkdir -p /newroot/proc /newroot/sys /newroot/dev /newroot/tmp /newroot/run /newroot/root
    exec switch_root /newroot /init stage2
    echo "ESCAPEWATCH-VM-DONE pass=0 fail=1 (switch_root failed)"
    poweroff -f
fi

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug
mount -t bpf bpf /sys/fs/bpf
mount -t securityfs securityfs /sys/kernel/security
# This host's hybrid cgroup layout: v1 controllers plus cgroup2 at /sys/fs/cgroup/unified. runc
# gives containers no cgroup namespace then, as on the host; from a cgroup namespace the
# release_agent scenario could not create its v1 hierarchy (pure v2 hosts are safe from it).
mount -t tmpfs -o mode=755 cgroup /sys/fs/cgroup
for c in cpu cpuacct cpuset memory devices freezer blkio pids; do
    mkdir -p /sys/fs/cgroup/$c
    mount -t cgroup -o $c cgroup /sys/fs/cgroup/$c || rmdir /sys/fs/cgroup/$c
done
mkdir -p /sys/fs/cgroup/systemd /sys/fs/cgroup/unified
mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd
mount -t cgroup2 cgroup2 /sys/fs/cgroup/unified
ip link set lo up
hostname escapewatch-vm
. /vm/env

echo "ESCAPEWATCH-VM-UNAME: $(uname -r)"
echo "ESCAPEWATCH-VM-LSM: $(cat /sys/kernel/security/lsm)"

# Which program attached to which hook: one agent start, stopped once ready.
mkdir -p /tmp/hooks
RUST_LOG=info NO_COLOR=1 "$ESCAPEWATCH_BIN" run --event-log /tmp/hooks/events.jsonl \
    --alert-log /tmp/hooks/alerts.jsonl --metrics-addr 127.0.0.1:0 2>/tmp/hooks/stderr &
agent=$!
i=0
while [ $i -lt 600 ] && ! grep -q "escapewatch is ready" /tmp/hooks/stderr; do
    kill -0 $agent 2>/dev/null || break
    sleep 0.5
    i=$((i + 1))
done
grep -q "escapewatch is ready" /tmp/hooks/stderr || tail -n 30 /tmp/hooks/stderr
kill -TERM $agent 2>/dev/null
wait $agent
grep -e "attach" -e "served by" /tmp/hooks/stderr | sed 's/^/ESCAPEWATCH-VM-HOOK: /'

pass=0
fail=0
while read -r bin name; do
    echo "ESCAPEWATCH-VM-RUN: $name"
    start=$(date +%s)
    if "/vm/bin/$bin" --exact "$name" --test-threads=1 </dev/null; then
        result=ok
        pass=$((pass + 1))
    else
        result=FAILED
        fail=$((fail + 1))
        # What the agent recorded, for the report (the guest's files vanish at power-off).
        work=$(ls -td "$ESCAPEWATCH_VM_WORK"/*/ 2>/dev/null | head -n 1)
        # The log is binary by default: `escapewatch export` gives its JSON lines.
        [ -n "$work" ] && { "$ESCAPEWATCH_BIN" export "$work/events.jsonl" 2>/dev/null || true; } \
            | tail -n 40 | sed 's/^/ESCAPEWATCH-VM-EVENT: /'
    fi
    echo "ESCAPEWATCH-VM: $name $result $(($(date +%s) - start))s"
done </vm/tests.txt
# Which hook served each alerted rule (written by the tests: kernel, rule, hooks).
sed 's/^/ESCAPEWATCH-VM-SERVED: /' "$ESCAPEWATCH_VM_WORK/hooks.tsv" 2>/dev/null
echo "ESCAPEWATCH-VM-DONE pass=$pass fail=$fail"
sync
poweroff -f
