#!/usr/bin/perl
# lvs-harness's command channel inside the UML guest: one long-lived process on its own
# serial line that runs each lab host's commands in that host's namespaces — a fork, three
# setns(2) and one exec of /bin/sh per command, its output pushed back as soon as it ends
# (no nsenter, no qemu-ga process, no polling). Perl because perl-base is in every Debian
# system and, single-threaded, may setns(2) into a mount namespace.
#
# Usage: host-agent.pl TTY NETNS_PREFIX NS_STATE_DIR SPOOL_DIR
# Requests (host -> agent):  "X <id> <host> <timeout ms> <command bytes> <stdin bytes>\n" command stdin
#                            "Q\n" (exit)
# Replies  (agent -> host):  "READY <pid>\n" once, then per request
#                            "R <id> <rc> <timed out 0|1> <stdout bytes> <stderr bytes>\n" stdout stderr
#                            and "A <bytes>\n" for every read of its line: the host keeps at most 2 KB
#                            unacknowledged (UML's serial line stops delivering for good once the
#                            guest tty's 4 KB buffer has filled: measured, a 5 KB request then hung
#                            every later one)
# rc is the exit status, or 128 + the signal; a command still running at its timeout is
# killed with its whole process group (daemons that called setsid stay, as under systemd).
use strict;
use warnings;
use POSIX qw(:sys_wait_h setsid _exit dup2);
use Time::HiRes qw(time);

my ($tty, $prefix, $state, $spool) = @ARGV;
my $SETNS = 308;            # x86_64 (UML runs the host's syscall ABI)
my $GRACE = 1.0;            # s a finished command's pipes may stay open (a background child holding them)
open(my $line, '+<:raw', $tty) or die "lvs-harness agent: cannot open $tty: $!\n";
mkdir $spool;
my $lfd = fileno($line);
my $inbuf = '';
my (%jobs, %by_fd);         # id -> job; pipe fd -> [id, 'out'|'err']

sub reply {
    my ($data) = @_;
    my $off = 0;
    while ($off < length $data) {
        my $n = syswrite($line, $data, length($data) - $off, $off);
        if (!defined $n) { next if $!{EINTR} || $!{EAGAIN}; exit 0 }
        $off += $n;
    }
}

sub start_job {
    my ($id, $host, $timeout_ms, $cmd, $stdin) = @_;
    my @ns = ("/run/netns/$prefix-$host", "$state/ns/$host.uts", "$state/ns/$host.mnt");
    my $in = '/dev/null';
    if (length $stdin) {
        $in = "$spool/$id.in";
        open(my $fh, '>:raw', $in) or return finish_now($id, 126, "lvs-harness agent: $in: $!\n");
        print $fh $stdin; close $fh;
    }
    pipe(my $or, my $ow) or return finish_now($id, 126, "lvs-harness agent: pipe: $!\n");
    pipe(my $er, my $ew) or return finish_now($id, 126, "lvs-harness agent: pipe: $!\n");
    my $pid = fork();
    if (!defined $pid) { return finish_now($id, 126, "lvs-harness agent: fork: $!\n") }
    if ($pid == 0) {
        setsid();
        my @fds;
        for my $p (@ns) {
            open(my $f, '<', $p) or do { syswrite $ew, "lvs-harness agent: no lab host $host ($p: $!)\n"; _exit(126) };
            push @fds, $f;
        }
        open(my $i, '<', $in) or do { syswrite $ew, "lvs-harness agent: stdin $in: $!\n"; _exit(126) };
        unlink $in if $in ne '/dev/null';
        dup2(fileno($i), 0); dup2(fileno($ow), 1); dup2(fileno($ew), 2);
        for my $f (@fds) {
            syscall($SETNS, fileno($f), 0) == 0 or do { syswrite STDERR, "lvs-harness agent: setns into $host: $!\n"; _exit(126) };
        }
        chdir '/root' or chdir '/';
        exec { '/bin/sh' } 'sh', '-c', $cmd;
        syswrite STDERR, "lvs-harness agent: cannot run /bin/sh: $!\n";
        _exit(127);
    }
    close $ow; close $ew;
    my $job = { id => $id, pid => $pid, out => '', err => '', fh => { out => $or, err => $er },
                deadline => time + $timeout_ms / 1000, timed_out => 0, rc => undef };
    $jobs{$id} = $job;
    $by_fd{fileno($or)} = [$id, 'out'];
    $by_fd{fileno($er)} = [$id, 'err'];
}

sub finish_now {
    my ($id, $rc, $err) = @_;
    reply("R $id $rc 0 0 " . length($err) . "\n" . $err);
}

sub finish {
    my ($job) = @_;
    for my $k ('out', 'err') {
        my $fh = delete $job->{fh}{$k} or next;
        delete $by_fd{fileno($fh)};
        close $fh;
    }
    delete $jobs{$job->{id}};
    reply("R $job->{id} $job->{rc} $job->{timed_out} " . length($job->{out}) . " " . length($job->{err}) . "\n"
          . $job->{out} . $job->{err});
}

sub status_rc {
    my ($st) = @_;
    return WIFEXITED($st) ? WEXITSTATUS($st) : 128 + WTERMSIG($st);
}

sub requests {
    while (1) {
        my $nl = index($inbuf, "\n");
        return if $nl < 0;
        my @f = split ' ', substr($inbuf, 0, $nl);
        if ($f[0] eq 'Q') { exit 0 }
        my ($id, $host, $t, $clen, $ilen) = @f[1 .. 5];
        return if length($inbuf) < $nl + 1 + $clen + $ilen;
        my $cmd = substr($inbuf, $nl + 1, $clen);
        my $stdin = substr($inbuf, $nl + 1 + $clen, $ilen);
        substr($inbuf, 0, $nl + 1 + $clen + $ilen) = '';
        start_job($id, $host, $t, $cmd, $stdin);
    }
}

$SIG{CHLD} = sub { };       # only to interrupt select
$SIG{PIPE} = 'IGNORE';
reply("READY $$\n");
while (1) {
    my $rin = '';
    vec($rin, $lfd, 1) = 1;
    vec($rin, $_, 1) = 1 for keys %by_fd;
    my $now = time;
    my $wait = 3600;
    for my $job (values %jobs) {
        my $left = $job->{deadline} - $now;
        $wait = $left if $left < $wait;
        # exited with its pipes still open: the grace period; pipes closed, not reaped: poll soon;
        # running: a child that exits while its pipes stay held is noticed within 50 ms
        $wait = 0.05 if $wait > 0.05;
        $wait = 0.002 if !%{$job->{fh}} && !defined $job->{rc} && $wait > 0.002;
    }
    $wait = 0 if $wait < 0;
    my $n = select(my $rout = $rin, undef, undef, $wait);
    if ($n > 0) {
        if (vec($rout, $lfd, 1)) {
            my $got = sysread($line, $inbuf, 65536, length $inbuf);
            exit 0 if defined $got && $got == 0;
            if ($got) { reply("A $got\n"); requests() }
        }
        for my $fd (keys %by_fd) {
            next unless vec($rout, $fd, 1);
            my ($id, $k) = @{$by_fd{$fd}};
            my $job = $jobs{$id};
            my $got = sysread($job->{fh}{$k}, $job->{$k}, 65536, length $job->{$k});
            next if !defined $got && ($!{EINTR} || $!{EAGAIN});
            if (!$got) {
                delete $by_fd{$fd};
                close delete $job->{fh}{$k};
            }
        }
    }
    $now = time;
    for my $job (values %jobs) {
        if (!defined $job->{rc}) {
            my $r = waitpid($job->{pid}, WNOHANG);
            if ($r == $job->{pid}) { $job->{rc} = status_rc($?); $job->{exited} = $now }
        }
        if (!defined $job->{rc} && !$job->{timed_out} && $now >= $job->{deadline}) {
            kill '-KILL', $job->{pid};
            $job->{timed_out} = 1;
            $job->{deadline} = $now + 10;
        }
        if (defined $job->{rc}) {
            finish($job) if !%{$job->{fh}} || $now - $job->{exited} >= $GRACE || $job->{timed_out};
        } elsif ($job->{timed_out} && $now >= $job->{deadline}) {
            $job->{rc} = 137;
            finish($job);
        }
    }
}
