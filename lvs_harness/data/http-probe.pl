# lvs-harness's prober: a new HTTP request to URL every INTERVAL seconds, from one process,
# until SECONDS have passed or it is sent SIGTERM. Requests overlap: one that hangs (the VIP is
# moving) does not delay the next, so a client-visible outage is measured to INTERVAL. Each
# request is a new TCP connection, closed by the client once its answer is in (or at TIMEOUT).
# One line per request, as http-burst.pl prints (lvs_harness.probes.client.parse_requests):
#   <epoch at its end> <curl-like rc> <http code> <seconds> <first word of the body or ->
# Usage: perl - URL INTERVAL TIMEOUT SECONDS < http-probe.pl   (stdout: the log, appended)
use strict;
use warnings;
use Errno qw(EINPROGRESS);
use Socket qw(AF_INET SOCK_STREAM SOL_SOCKET SO_ERROR inet_aton pack_sockaddr_in);
use Time::HiRes qw(time);

my ($url, $interval, $timeout, $seconds) = @ARGV;
my ($host, $port, $path) = $url =~ m{^http://([^/:?#]+)(?::(\d+))?([/?][^#]*)?} or die "lvs-harness: not an http URL: $url\n";
$port ||= 80;
$path = '/' unless defined $path && length $path;
my $addr = inet_aton($host) or die "lvs-harness: cannot resolve $host\n";
my $peer = pack_sockaddr_in($port, $addr);
my $request = "GET $path HTTP/1.1\r\nHost: $host" . ($port == 80 ? '' : ":$port")
            . "\r\nUser-Agent: lvs-harness-prober\r\nAccept: */*\r\n\r\n";
$| = 1;
my $stop = 0;
$SIG{TERM} = $SIG{INT} = sub { $stop = 1 };
my %open;      # fileno -> {sock, t0, state: connecting|reading, data}
my $end = time + $seconds;
my $next = time;

sub done {
    my ($c, $rc, $code) = @_;
    my $t1 = time;
    delete $open{fileno($c->{sock})};
    close $c->{sock};
    printf "%.6f %d %03d %.6f %s\n", $t1, $rc, $code, $t1 - $c->{t0}, $c->{first} // '-';
}

sub parsed {          # the answer is complete: (code, first word of the body) or ()
    my ($c, $eof) = @_;
    my $at = index($c->{data}, "\r\n\r\n");
    return () if $at < 0;
    my $head = substr($c->{data}, 0, $at);
    my $body = substr($c->{data}, $at + 4);
    my ($code) = $head =~ m{^HTTP/\S+\s+(\d{3})};
    my ($length) = $head =~ /^content-length:\s*(\d+)/mi;
    return () unless $eof || (defined $length && length($body) >= $length) || ($code // 0) =~ /^(1..|204|304)$/;
    ($c->{first}) = $body =~ /^\s*(\S+)/;
    return ($code // 0);
}

while (!$stop) {
    my $now = time;
    last if $now >= $end && !%open;
    if ($now >= $next && $now < $end) {
        $next += $interval;
        $next = $now + $interval if $next < $now - $interval;     # fell behind: say the rate it got
        socket(my $s, AF_INET, SOCK_STREAM, 0) or die "lvs-harness: socket: $!\n";
        my $flags = fcntl($s, 3, 0);                               # F_GETFL
        fcntl($s, 4, $flags | 2048);                               # F_SETFL O_NONBLOCK
        my $c = { sock => $s, t0 => $now, state => 'connecting', data => '' };
        $open{fileno($s)} = $c;
        if (connect($s, $peer)) { $c->{state} = 'write' }
        elsif ($! != EINPROGRESS) { done($c, 7, 0) }
    }
    my ($rin, $win) = ('', '');
    for my $c (values %open) {
        if ($c->{t0} + $timeout <= $now) { done($c, 28, 0); next }
        vec($c->{state} eq 'reading' ? $rin : $win, fileno($c->{sock}), 1) = 1;
    }
    my $wait = $next - time;
    for my $c (values %open) { my $l = $c->{t0} + $timeout - time; $wait = $l if $l < $wait }
    $wait = 0 if $wait < 0;
    $wait = 0.1 if $wait > 0.1;
    my $n = select(my $rout = $rin, my $wout = $win, undef, $wait);
    next if $n <= 0;
    for my $c (values %open) {
        my $fd = fileno($c->{sock});
        if ($c->{state} ne 'reading' && vec($wout, $fd, 1)) {
            my $err = unpack('i', getsockopt($c->{sock}, SOL_SOCKET, SO_ERROR) // pack('i', 1));
            if ($err) { done($c, 7, 0); next }
            if (!defined syswrite($c->{sock}, $request)) { done($c, 56, 0); next }
            $c->{state} = 'reading';
        } elsif ($c->{state} eq 'reading' && vec($rout, $fd, 1)) {
            my $got = sysread($c->{sock}, $c->{data}, 65536, length $c->{data});
            if (!defined $got) { done($c, 56, 0); next }
            my @code = parsed($c, !$got);
            if (@code) { done($c, 0, $code[0]) }
            elsif (!$got) { done($c, length $c->{data} ? 56 : 52, 0) }
        }
    }
}
