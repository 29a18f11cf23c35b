# lvs-harness's HTTP client in the lab's client host, one process for many requests (curl's
# start-up is ~150 ms a request in the UML guest). Every request is a new TCP connection that the
# client closes first once the whole answer is in, as a curl per request does: the client keeps
# TIME_WAIT, so no source port is reused while IPVS still holds its entry.
#
#   perl - burst URL COUNT TIMEOUT              COUNT requests one after the other
#   perl - probe URL INTERVAL TIMEOUT SECONDS   a request every INTERVAL s, overlapping (one that
#                                               hangs does not delay the next), until SECONDS
#                                               have passed or SIGTERM
# (the script on stdin). One line per request, in the format of
# lvs_harness.probes.client.parse_requests:
#   <epoch at its end> <curl-like rc> <http code> <seconds> <first word of the body or -> [<body>]
# rc as curl's: 0 answered, 7 no connection, 28 timed out, 52 empty answer, 56 broken answer.
# The whole body follows only in bursts.
use strict;
use warnings;
use Errno qw(EINPROGRESS);
use Socket qw(AF_INET SOCK_STREAM SOL_SOCKET SO_ERROR inet_aton pack_sockaddr_in);
use Time::HiRes qw(time);

my ($mode, $url, @args) = @ARGV;
my ($host, $port, $path) = $url =~ m{^http://([^/:?#]+)(?::(\d+))?([/?][^#]*)?}
    or die "lvs-harness: not an http URL: $url\n";
$port ||= 80;
$path = '/' unless defined $path && length $path;
$path = "/$path" if $path =~ /^\?/;
my $addr = inet_aton($host) or die "lvs-harness: cannot resolve $host\n";
my $peer = pack_sockaddr_in($port, $addr);
my $request = "GET $path HTTP/1.1\r\nHost: $host" . ($port == 80 ? '' : ":$port")
            . "\r\nUser-Agent: lvs-harness\r\nAccept: */*\r\n\r\n";
$| = 1;

# An answer read so far -> () while incomplete, else (rc, http code, body).
sub answer {
    my ($data, $eof) = @_;
    my $at = index($data, "\r\n\r\n");
    if ($at < 0) {
        return () unless $eof;
        return length $data ? (56, 0, '') : (52, 0, '');
    }
    my $head = substr($data, 0, $at);
    my $body = substr($data, $at + 4);
    my ($code) = $head =~ m{^HTTP/\S+\s+(\d{3})};
    return (56, 0, '') unless $code;
    return (0, $code, '') if $code =~ /^(1..|204|304)$/;
    if ($head =~ /^transfer-encoding:\s*chunked/mi) {
        my ($plain, $pos) = ('', 0);
        while ($body =~ /\G([0-9a-fA-F]+)[^\r\n]*\r\n/gc) {
            my $n = hex $1;
            return (0, $code, $plain) if $n == 0;
            $pos = pos($body);
            return $eof ? (56, 0, '') : () if length($body) < $pos + $n + 2;
            $plain .= substr($body, $pos, $n);
            pos($body) = $pos + $n + 2;
        }
        return $eof ? (56, 0, '') : ();
    }
    if ($head =~ /^content-length:\s*(\d+)/mi) {
        return (0, $code, substr($body, 0, $1)) if length($body) >= $1;
        return $eof ? (56, 0, '') : ();
    }
    return $eof ? (0, $code, $body) : ();          # the body ends where the server closes
}

sub report {
    my ($t0, $rc, $code, $body, $whole) = @_;
    my $t1 = time;
    (my $flat = $body // '') =~ s/\s+/ /g;
    $flat =~ s/^ //;
    $flat =~ s/ $//;
    my ($first) = $flat =~ /^(\S+)/;
    printf "%.6f %d %03d %.6f %s%s\n", $t1, $rc, $code, $t1 - $t0, $first // '-',
        $whole && length $flat ? " $flat" : '';
}

# A connection in flight: {sock, t0, state: connecting|reading, data}.
sub open_connection {
    my ($t0) = @_;
    socket(my $s, AF_INET, SOCK_STREAM, 0) or die "lvs-harness: socket: $!\n";
    fcntl($s, 4, fcntl($s, 3, 0) | 2048);          # F_SETFL(F_GETFL | O_NONBLOCK)
    my $c = { sock => $s, t0 => $t0, state => 'connecting', data => '' };
    return $c if connect($s, $peer) || $! == EINPROGRESS;
    $c->{failed} = 7;
    return $c;
}

# Move $c on after select said it is ready: () while in flight, else (rc, code, body).
sub step {
    my ($c) = @_;
    if ($c->{state} eq 'connecting') {
        my $err = unpack('i', getsockopt($c->{sock}, SOL_SOCKET, SO_ERROR) // pack('i', 1));
        return (7, 0, '') if $err;
        return (56, 0, '') unless defined syswrite($c->{sock}, $request);
        $c->{state} = 'reading';
        return ();
    }
    my $got = sysread($c->{sock}, $c->{data}, 65536, length $c->{data});
    return (56, 0, '') unless defined $got;
    return answer($c->{data}, !$got);
}

# Wait up to $wait s for any of @conns; step those ready; returns [conn, rc, code, body] for each done.
sub poll_conns {
    my ($wait, @conns) = @_;
    my ($rin, $win) = ('', '');
    vec($_->{state} eq 'reading' ? $rin : $win, fileno($_->{sock}), 1) = 1 for @conns;
    my $n = select(my $rout = $rin, my $wout = $win, undef, $wait < 0 ? 0 : $wait);
    my @done;
    return @done if $n <= 0;
    for my $c (@conns) {
        my $fd = fileno($c->{sock});
        next unless vec($c->{state} eq 'reading' ? $rout : $wout, $fd, 1);
        my @r = step($c);
        push @done, [$c, @r] if @r;
    }
    return @done;
}

if ($mode eq 'burst') {
    my ($count, $timeout) = @args;
    my $unanswered = 0;            # connects in a row that got no answer at all
    for (1 .. $count) {
        # after 3 such connects in a row the rest wait 0.5 s each (not $timeout): their SYNs still
        # reach the director, whose IPVS counts them, and the batch is not 50 x 2 s of silence
        my $wait = $unanswered >= 3 && $timeout > 0.5 ? 0.5 : $timeout;
        my $c = open_connection(time);
        my @r = $c->{failed} ? ($c->{failed}, 0, '') : ();
        while (!@r) {
            my $left = $c->{t0} + $wait - time;
            if ($left <= 0) { @r = (28, 0, ''); last }
            my ($done) = poll_conns($left, $c);
            @r = @$done[1 .. 3] if $done;
        }
        $unanswered = ($r[0] == 28 && $c->{state} eq 'connecting') ? $unanswered + 1 : 0;
        close $c->{sock};
        report($c->{t0}, @r, 1);
    }
} elsif ($mode eq 'probe') {
    my ($interval, $timeout, $seconds) = @args;
    my $stop = 0;
    $SIG{TERM} = $SIG{INT} = sub { $stop = 1 };
    my %open;
    my $end = time + $seconds;
    my $next = time;
    my $finish = sub { my ($c, @r) = @_; delete $open{$c}; close $c->{sock}; report($c->{t0}, @r, 0) };
    while (!$stop) {
        my $now = time;
        last if $now >= $end && !%open;
        if ($now >= $next && $now < $end) {
            $next += $interval;
            $next = $now + $interval if $next < $now - $interval;    # fell behind: the rate says so
            my $c = open_connection($now);
            if ($c->{failed}) { report($now, $c->{failed}, 0, '', 0); close $c->{sock} } else { $open{$c} = $c }
        }
        for my $c (values %open) { $finish->($c, 28, 0, '') if $c->{t0} + $timeout <= $now }
        my $wait = $next - time;
        for my $c (values %open) { my $l = $c->{t0} + $timeout - time; $wait = $l if $l < $wait }
        $wait = 0.1 if $wait > 0.1;
        $finish->(@$_) for poll_conns($wait, values %open);
    }
} else {
    die "lvs-harness: http-client.pl burst|probe, not $mode\n";
}
