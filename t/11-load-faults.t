# Load and faults: a stuck player among 100 others, connection churn (leaks), nginx -s reload
# with clients connected, publishers that vanish (SIGKILL, RST in the middle of a message).
#
# What a reload does to RTMP clients (TESTS 3-6): the master starts new workers and tells the old
# ones to shut down gracefully. An old worker closes its listening sockets and its idle
# connections (c->idle: HTTP keepalive only), then exits once no non-cancelable timer is left.
# An RTMP session is never idle and keeps its read timer ("ping", 60 s by default) armed, so the
# old worker goes on serving its publishers and players until they leave; new connections go to
# the new workers, whose streams are their own (a new publisher may publish a name an old
# worker still serves). With worker_shutdown_timeout nginx flags every connection c->close when
# it expires and the module closes the sessions ("worker is shutting down"). With "ping 0" the
# sessions still keep a (self re-arming) read timer, so the same holds (TEST 6).
use lib 't/lib';
use Test::Nginx::Rtmp;
use IO::Select;
use JSON::PP ();
use POSIX ();
use Socket qw(PF_INET SOCK_STREAM IPPROTO_TCP SOL_SOCKET SO_RCVBUF SO_LINGER inet_aton
              pack_sockaddr_in);
use Time::HiRes ();

our $RTMP = Test::Nginx::Rtmp::repo_root() . '/target/release/rtmp';

# ---------------------------------------------------------------------------------------------
# nginx processes

# (live workers, workers that are shutting down) of the master, from ps titles.
sub workers {
    my ($master) = @_;
    my (@live, @old);
    for (`ps --ppid $master -o pid=,args= 2>/dev/null`) {
        next unless /^\s*(\d+)\s+nginx: worker process(.*)/;
        my ($pid, $rest) = ($1, $2);
        if ($rest =~ /shutting down/) { push @old, $pid } else { push @live, $pid }
    }
    return ([sort { $a <=> $b } @live], [sort { $a <=> $b } @old]);
}

sub rss_kb {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/status" or return undef;
    while (<$fh>) { return $1 if /^VmRSS:\s+(\d+)\s+kB/ }
    return undef;
}

sub fd_count {
    my ($pid) = @_;
    opendir my $d, "/proc/$pid/fd" or return undef;
    return scalar grep { !/^\./ } readdir $d;
}

sub error_log_text {
    open my $fh, '<', "$ENV{TEST_NGINX_PREFIX}/logs/error.log" or return '';
    local $/;
    return <$fh> // '';
}

# ---------------------------------------------------------------------------------------------
# Raw clients

sub connect_cmd {
    my ($port, $app) = @_;
    return amf_str('connect') . amf_num(1)
        . amf_obj(app => amf_str($app), tcUrl => amf_str("rtmp://127.0.0.1:$port/$app"));
}

# A TCP socket to 127.0.0.1:$port; rcvbuf => bytes sets SO_RCVBUF before connecting (so the
# window the kernel advertises stays small); linger0 => 1 makes close() send an RST.
sub raw_socket {
    my ($port, %opt) = @_;
    socket(my $s, PF_INET, SOCK_STREAM, IPPROTO_TCP) or return undef;
    setsockopt($s, SOL_SOCKET, SO_RCVBUF, $opt{rcvbuf}) or return undef if $opt{rcvbuf};
    connect($s, pack_sockaddr_in($port, inet_aton('127.0.0.1'))) or return undef;
    binmode $s;
    return $s;
}

# Handshake, connect, createStream, play live/$name. Waits for NetStream.Play.Start unless
# no_wait => 1 (then it reads nothing at all after the handshake). Returns the socket or undef.
sub raw_play {
    my ($port, $name, %opt) = @_;
    my $s = raw_socket($port, %opt) or return undef;
    rtmp_handshake($s) or return undef;
    send_bytes($s, rtmp_chunk(3, 20, 0, connect_cmd($port, 'live'))
        . rtmp_chunk(3, 20, 0, amf_str('createStream') . amf_num(2) . amf_null())
        . rtmp_chunk(8, 20, 1, amf_str('play') . amf_num(3) . amf_null() . amf_str($name)))
        or return undef;
    return $s if $opt{no_wait};
    read_until($s, qr/NetStream\.Play\.Start/, 5) or return undef;
    return $s;
}

# Handshake, connect, createStream, publish live/$name; the socket once NetStream.Publish.Start
# arrived, undef otherwise ($_[2], if given, is set to what was read).
sub raw_publish {
    my ($port, $name) = @_;
    my $s = raw_socket($port) or return undef;
    rtmp_handshake($s) or return undef;
    send_bytes($s, rtmp_chunk(3, 20, 0, connect_cmd($port, 'live'))
        . rtmp_chunk(3, 20, 0, amf_str('createStream') . amf_num(2) . amf_null())
        . rtmp_chunk(8, 20, 1, amf_str('publish') . amf_num(3) . amf_null() . amf_str($name)
                     . amf_str('live')));
    my $got = read_until($s, qr/NetStream\.Publish\.(?:Start|BadName)/, 5, my $all);
    $_[2] = $all if @_ > 2;
    return $got && $got =~ /Publish\.Start/ ? $s : undef;
}

# Reads and drops whatever arrives for $secs seconds; the bytes read, or -1 on EOF.
sub drain {
    my ($s, $secs) = @_;
    my $sel = IO::Select->new($s);
    my $deadline = Time::HiRes::time() + $secs;
    my $n = 0;
    while ((my $left = $deadline - Time::HiRes::time()) > 0) {
        next unless $sel->can_read($left);
        my $r = sysread($s, my $buf, 65536);
        return -1 unless $r;
        $n += $r;
    }
    return $n;
}

# `rtmp bench --json` as a hash.
sub bench {
    my ($url, @args) = @_;
    my $out = `timeout 60 $main::RTMP bench '$url' --json @args 2>/dev/null`;
    my $j = eval { JSON::PP::decode_json($out) };
    return $j // { error => $out };
}

# $n cycles of: connect, simple handshake, connect + createStream + play live/$name (sent with C2
# in one write), wait for NetStream.Play.Start, close. With abort => 1 it does not wait: it closes
# with SO_LINGER 0 (an RST) right after sending play. Returns { played => n (cycles done),
# failed => n, errors => { reason => count } }.
sub churn {
    my ($port, $name, $n, %opt) = @_;
    my $addr = pack_sockaddr_in($port, inet_aton('127.0.0.1'));
    my $c0c1 = "\x03" . pack('NN', 0, 0) . join('', map { chr int rand 256 } 1 .. 1528);
    my $cmds = rtmp_chunk(3, 20, 0, connect_cmd($port, 'live'))
        . rtmp_chunk(3, 20, 0, amf_str('createStream') . amf_num(2) . amf_null())
        . rtmp_chunk(8, 20, 1, amf_str('play') . amf_num(3) . amf_null() . amf_str($name));
    my %r = (played => 0, failed => 0, errors => {});
    my $read = sub {    # appends to $_[1] until it is $_[2] long or matches $_[3]; 0 on timeout/EOF
        my ($s, undef, $len, $re) = @_;
        my $rin = '';
        vec($rin, fileno $s, 1) = 1;
        until ($len ? length $_[1] >= $len : $_[1] =~ $re) {
            select(my $rout = $rin, undef, undef, 5) or return 0;
            sysread($s, $_[1], 65536, length $_[1]) or return 0;
        }
        return 1;
    };
    for my $i (1 .. $n) {
        my $err;
        {
            socket(my $s, PF_INET, SOCK_STREAM, IPPROTO_TCP) or do { $err = "socket: $!"; last };
            connect($s, $addr) or do { $err = "connect: $!"; last };
            (syswrite($s, $c0c1) // -1) == length $c0c1 or do { $err = 'write C0C1'; last };
            my $buf = '';
            $read->($s, $buf, 3073) or do { $err = 'S0S1S2'; last };
            my $out = substr($buf, 1, 1536) . $cmds;
            (syswrite($s, $out) // -1) == length $out or do { $err = 'write C2+commands'; last };
            if ($opt{abort}) {
                setsockopt($s, SOL_SOCKET, SO_LINGER, pack('ii', 1, 0));
                close $s;
                last;
            }
            my $rest = substr($buf, 3073);
            $read->($s, $rest, 0, qr/NetStream\.Play\.Start/) or do { $err = 'Play.Start'; last };
            close $s;
        }
        if ($err) { $r{failed}++; $r{errors}{$err}++ } else { $r{played}++ }
    }
    return \%r;
}

# Starts FFmpeg publishers on live/$name until one publishes on each of $n workers (a worker's
# streams are its own: with several workers a player only gets the stream if the worker it lands
# on has a publisher). A publisher that lands on a worker that has one gets BadName and is
# stopped. Returns the pids of the publishers that publish.
sub publish_everywhere {
    my ($port, $name, $n) = @_;
    my $url = "rtmp://127.0.0.1:$port/live/$name";
    my (%on, @pubs);
    for my $try (1 .. 30) {
        last if keys %on >= $n;
        my $off = length error_log_text();
        my $p = publish($url, loop => 1, timeout => 150);
        my $res = wait_until(sub {
            my $new = substr(error_log_text(), $off);
            return "ok $1" if $new =~ /(\d+)#\d+: \*\d+ rtmp: live: publish "\Q$name\E"/;
            return 'busy' if $new =~ /already publishing/;
            return 0;
        }, 10);
        if ($res && $res =~ /^ok (\d+)/) {
            $on{$1} = 1;
            push @pubs, $p;
        } else {
            stop($p);
        }
    }
    return @pubs;
}

# nginx -s reload (HUP to the master) while FFmpeg publishes and plays, with $n workers.
sub reload_while_streaming {
    my ($port, $n) = @_;
    my $url = "rtmp://127.0.0.1:$port/live/rl";
    my $master = master_pid();
    my ($old) = workers($master);
    is(scalar @$old, $n, "$n worker(s) before the reload");
    # One publisher serves every worker (the others pull it over their link sockets).
    my @pubs = publish_everywhere($port, 'rl', 1);
    is(scalar @pubs, 1, 'a publisher');
    my $player = in_background(sub { count_frames($url, 8) });
    # The player must be on an old worker when the reload comes.
    ok(wait_playing('rl'), 'the player plays');
    sleep 1;
    # New connections are accepted all through the reload.
    my $probe = in_background(sub {
        my $ok = 0;
        for (1 .. 30) {
            my $s = raw_socket($port);
            $ok++ if $s && rtmp_handshake($s, 3);
            Time::HiRes::sleep(0.05);
        }
        return $ok;
    });
    Time::HiRes::sleep(0.5);
    ok(kill('HUP', $master), 'HUP sent to the master');
    my %old = map { $_ => 1 } @$old;
    my $new = wait_until(sub {
        my ($live) = workers($master);
        return @$live == $n && !grep({ $old{$_} } @$live) ? $live : 0;
    }, 15);
    ok($new, "$n new worker(s) started") or return;
    my ($handshakes) = result_of($probe, 30);
    is($handshakes, 30, 'every handshake during the reload succeeded');
    # nginx's graceful shutdown only closes idle connections (c->idle: HTTP keepalive) and then
    # waits for the worker's non-cancelable timers. An RTMP session is never idle and has its
    # read timer ("ping") armed, so the old worker keeps serving its publisher and players until
    # they leave (or worker_shutdown_timeout: TEST 5).
    # A new player lands on a new worker, which pulls the stream from the old one.
    my ($nv, $na, $nerr) = count_frames($url, 2);
    cmp_ok($nv, '>=', 25, 'a new player after the reload gets the old worker\'s stream') or diag($nerr);
    my ($v, $a, $err) = result_of($player, 40);
    cmp_ok($v // 0, '>=', 150, 'the player across the reload got its 8 s of video') or diag($err);
    ok(scalar(grep({ kill 0, $_ } @$old)), 'the old worker of the publisher still runs while it is there');
    is(wait_publisher($_, 0), undef, "publisher $_ still publishing") for @pubs;
    # The clients leave: the old workers exit.
    my $t0 = Time::HiRes::time();
    stop($_) for @pubs;
    ok(wait_until(sub { !grep { kill 0, $_ } @$old }, 10), 'the old worker(s) exit once their clients left');
    note(sprintf 'old workers gone %.1f s after the publishers stopped', Time::HiRes::time() - $t0);
    # New clients on the new workers: the same name publishes and plays.
    my @pubs2 = publish_everywhere($port, 'rl', 1);
    is(scalar @pubs2, 1, 'the same name publishes again after the reload');
    my ($v2, $a2, $err2) = count_frames($url, 3);
    cmp_ok($v2, '>=', 50, 'a new player gets frames after the reload') or diag($err2);
    stop($_) for @pubs2;
}

run_tests();

__DATA__

=== TEST 1: a player that never reads, among 100 that do: bounded memory, closed on timeout
--- config
server {
    # A small kernel send buffer: the module's own queue, not the kernel's, takes the backlog.
    listen $TEST_NGINX_RTMP_PORT sndbuf=64k;
    timeout 3s;
    application live { live on; }
}
--- timeout: 90
--- run
my $port = $TEST_NGINX_RTMP_PORT;
my $url = "rtmp://127.0.0.1:$port/live/load";
my ($worker) = Test::Nginx::Rtmp::worker_pids(main::master_pid());
# bench.flv (2.2 Mbit/s) rather than test.flv (0.14 Mbit/s): enough bytes to fill the queue.
my $pub = publish($url, loop => 1, file => media('bench.flv'));
ok(wait_until(sub { main::error_log_text() =~ /live: publish "load"/ }, 10), 'FFmpeg publishes');
my $bench = in_background(sub { main::bench($url, '--players', 100, '--duration', 8) });
# The baseline is taken once the 100 players are up (ramp: 500/s) and past their join burst.
ok(wait_playing('load', 100, 30), 'the 100 players play');
sleep 1;
my $rss0 = main::rss_kb($worker);
my $t0 = Time::HiRes::time();
my $stuck = main::raw_play($port, 'load', rcvbuf => 4096, no_wait => 1);
ok($stuck, 'stuck player sent play');
# Its connection number: the raw connect sends no flashVer.
my $id = wait_until(sub { main::error_log_text() =~ /\*(\d+) rtmp: connect app="live" flashver=""/ ? $1 : 0 }, 5);
ok($id, "the stuck player is connection *$id");
# The server queues for the stuck player until "timeout" (3 s without write progress) closes it.
my $max = $rss0;
my $closed = wait_until(sub {
    my $r = main::rss_kb($worker) // 0;
    $max = $r if $r > $max;
    return main::error_log_text() =~ /\*$id rtmp: closing: write timed out \("timeout"\)/;
}, 15, 0.1);
my $closed_after = Time::HiRes::time() - $t0;
ok($closed, 'the stuck player is closed by the write timeout');
cmp_ok($closed_after, '>=', 2.5, 'not before "timeout" (3 s)');
cmp_ok($closed_after, '<', 12, sprintf('within a few seconds of "timeout" (%.1f s after play)', $closed_after));
cmp_ok($max - $rss0, '<', 8 * 1024, "worker RSS grows < 8 MB while it is stuck (baseline $rss0 kB, max $max kB)");
ok(main::is_closed($stuck, 10), 'the stuck socket sees the close (once it reads)');
my ($r) = result_of($bench, 60);
$r ||= {};
is($r->{players_connected}, 100, 'bench: 100 players played') or diag(explain($r));
is($r->{players_with_frames}, 100, 'bench: all of them got frames');
is($r->{players_dropped}, 0, 'bench: none was dropped');
is($r->{players_never_live}, 0, 'bench: all reached the live edge');
cmp_ok($r->{video_frames} // 0, '>=', 100 * 25 * 4, 'bench: at least 4 s of video each on average');
cmp_ok($r->{lag_ms}{p99} // 1e9, '<', 1000, 'bench: lag p99 < 1 s');
is(wait_publisher($pub, 0), undef, 'publisher unaffected') or diag(publisher_log($pub));
--- error_log
/closing: write timed out \("timeout"\)/



=== TEST 2: 10,000 connect/handshake/play/disconnect cycles (+ 2,000 reset ones) leak neither memory nor descriptors
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; }
}
--- timeout: 120
--- run
my $port = $TEST_NGINX_RTMP_PORT;
my $url = "rtmp://127.0.0.1:$port/live/churn";
my ($worker) = Test::Nginx::Rtmp::worker_pids(main::master_pid());
# A live publisher, so every play also gets the metadata, sequence headers and GOP cache.
my $pub = publish($url, loop => 1);
ok(wait_until(sub { main::error_log_text() =~ /live: publish "churn"/ }, 10), 'FFmpeg publishes');
sleep 2;    # a GOP in the cache
my $warm = main::churn($port, 'churn', 500);
is($warm->{failed}, 0, 'warm-up: 500 cycles without a failure') or diag(explain($warm));
# Every descriptor of the closed sessions is gone once the worker has seen the closes.
my $fd_idle = sub { main::fd_count($worker) };
my $fd0 = $fd_idle->();
Time::HiRes::sleep(0.5);
wait_until(sub { my $n = $fd_idle->(); my $same = $n == $fd0; $fd0 = $n; $same }, 5, 0.2);
my $rss0 = main::rss_kb($worker);
my $t0 = Time::HiRes::time();
my $run = main::churn($port, 'churn', 10_000);
my $secs = Time::HiRes::time() - $t0;
note(sprintf '10000 cycles in %.1f s (%.0f/s)', $secs, 10_000 / $secs);
is($run->{failed}, 0, '10,000 cycles without a failure') or diag(explain($run));
is($run->{played}, 10_000, 'each got NetStream.Play.Start');
# And 2,000 that reset the connection right after sending play (the server may be anywhere in
# connect / createStream / play when the RST arrives).
my $abort = main::churn($port, 'churn', 2_000, abort => 1);
is($abort->{failed}, 0, '2,000 aborted cycles without a failure') or diag(explain($abort));
my $fd1 = wait_until(sub { my $n = $fd_idle->(); $n == $fd0 ? $n : 0 }, 10, 0.1) || $fd_idle->();
is($fd1, $fd0, "worker's open descriptors back to the baseline ($fd0)");
my $rss1 = main::rss_kb($worker);
# The allocator keeps some freed memory (arenas, the top chunk), so RSS is not exact: 5 % of the
# worker's RSS, or 1 MB when that is larger (the RSS is only a few MB). 1 MB over 10,000 cycles
# still catches any leak of 100 bytes or more per connection.
my $limit = $rss0 * 0.05 > 1024 ? $rss0 * 0.05 : 1024;
cmp_ok($rss1 - $rss0, '<=', $limit, "worker RSS after 12,000 cycles: $rss0 -> $rss1 kB");
is(wait_publisher($pub, 0), undef, 'publisher unaffected') or diag(publisher_log($pub));
my ($v) = count_frames($url, 2);
cmp_ok($v, '>', 25, 'the stream still plays');
--- no_error_log
protocol error
undecodable



=== TEST 3: nginx -s reload while publishing and playing (one worker)
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; }
}
--- reloads
--- timeout: 120
--- run
main::reload_while_streaming($TEST_NGINX_RTMP_PORT, 1);
--- error_log
gracefully shutting down
--- no_error_log
open socket
worker is shutting down



=== TEST 4: nginx -s reload while publishing and playing (two workers)
--- workers: 2
--- config
server {
    # One listening socket per worker: the kernel spreads the connections over both.
    listen $TEST_NGINX_RTMP_PORT reuseport;
    application live { live on; }
}
--- reloads
--- timeout: 120
--- run
main::reload_while_streaming($TEST_NGINX_RTMP_PORT, 2);
--- error_log
gracefully shutting down
--- no_error_log
open socket
worker is shutting down



=== TEST 5: with worker_shutdown_timeout the old worker closes its sessions and exits; clients come back at once
--- main_config
worker_shutdown_timeout 2s;
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; }
}
--- reloads
--- timeout: 90
--- run
my $port = $TEST_NGINX_RTMP_PORT;
my $url = "rtmp://127.0.0.1:$port/live/wst";
my $master = main::master_pid();
my ($old) = main::workers($master);
my ($pub) = main::publish_everywhere($port, 'wst', 1);
ok($pub, 'FFmpeg publishes');
my $raw = main::raw_play($port, 'wst');
ok($raw, 'a raw player plays');
cmp_ok(main::drain($raw, 1), '>', 0, 'it gets media');
my $t0 = Time::HiRes::time();
kill 'HUP', $master;
ok(wait_until(sub { my ($live) = main::workers($master); @$live == 1 && $live->[0] != $old->[0] }, 15),
   'a new worker started');
# nginx sets c->close on every connection when worker_shutdown_timeout expires and calls its read
# handler: the module closes the session ("worker is shutting down").
ok(wait_until(sub { !kill 0, $old->[0] }, 15), 'the old worker exits');
my $took = Time::HiRes::time() - $t0;
cmp_ok($took, '>=', 1.5, 'not before worker_shutdown_timeout (2 s)');
cmp_ok($took, '<', 10, sprintf('soon after it (%.1f s)', $took));
ok(is_closed($raw, 5), 'the player was disconnected');
ok(defined wait_publisher($pub, 10), 'the publisher was disconnected (FFmpeg exits)');
my ($pub2) = main::publish_everywhere($port, 'wst', 1);
ok($pub2, 'the same name publishes again at once');
my ($v, $a, $err) = count_frames($url, 3);
cmp_ok($v, '>=', 50, 'and plays') or diag($err);
--- error_log
/closing: worker is shutting down/



=== TEST 6: reload with "ping 0": sessions have no timer, the old worker must not abandon them
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    ping 0;
    application live { live on; }
}
--- reloads
--- timeout: 90
--- run
my $port = $TEST_NGINX_RTMP_PORT;
my $url = "rtmp://127.0.0.1:$port/live/p0";
my $master = main::master_pid();
my ($old) = main::workers($master);
my ($pub) = main::publish_everywhere($port, 'p0', 1);
ok($pub, 'FFmpeg publishes');
my $raw = main::raw_play($port, 'p0');
ok($raw, 'a raw player plays');
cmp_ok(main::drain($raw, 1), '>', 0, 'it gets media');
kill 'HUP', $master;
ok(wait_until(sub { my ($live) = main::workers($master); @$live == 1 && $live->[0] != $old->[0] }, 15),
   'a new worker started');
my $gone = wait_until(sub { !kill 0, $old->[0] }, 3);
my $log = main::error_log_text();
# nginx ends a gracefully shutting down worker as soon as no non-cancelable timer is left
# (ngx_event_no_timers_left). Sessions without "ping" used to arm no timer, so the old worker
# exited at once and left them open ("open socket #N left in connection N" [alert]s).
ok($log !~ /open socket #\d+ left in connection/, 'the old worker leaves no session open behind');
ok(!$gone, 'it keeps serving its clients');
cmp_ok(main::drain($raw, 1), '>', 0, 'the raw player still gets media from the old worker');
unlike($log, qr/exited on signal/, 'no worker crashed');
# Whatever the old worker did, clients come back on the new one.
stop($pub);
my ($pub2) = main::publish_everywhere($port, 'p0', 1);
ok($pub2, 'the same name publishes again');
my ($v, $a, $err) = count_frames($url, 3);
cmp_ok($v, '>=', 50, 'and plays') or diag($err);



=== TEST 7: a publisher killed with SIGKILL: players get UnpublishNotify, the name is free at once
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; }
}
--- timeout: 90
--- run
my $port = $TEST_NGINX_RTMP_PORT;
my $url = "rtmp://127.0.0.1:$port/live/gone";
my $pub = rtmp_publish($url, media(), loop => 1);
ok(wait_until(sub { main::error_log_text() =~ /live: publish "gone"/ }, 10), 'our client publishes')
    or diag(publisher_log($pub));
my @raw = map { main::raw_play($port, 'gone') } 1 .. 2;
ok($raw[$_], "raw player $_ plays") for 0 .. 1;
my $cli = in_background(sub {
    Test::Nginx::Rtmp::run_cmd([$main::RTMP, 'play', $url, '--idle-timeout', 20], timeout => 40);
});
ok(wait_until(sub { my @n = main::error_log_text() =~ /live: play "gone"/g; @n >= 3 }, 10),
   'rtmp play plays too');
cmp_ok(main::drain($raw[$_], 1), '>', 0, "raw player $_ gets media") for 0 .. 1;
# SIGKILL: no FCUnpublish / deleteStream, the kernel just closes the socket.
kill 'KILL', -$pub, $pub;
ok(defined wait_publisher($pub, 5), 'publisher killed');
my $t0 = Time::HiRes::time();
for my $i (0 .. 1) {
    ok(read_until($raw[$i], qr/NetStream\.Play\.UnpublishNotify/, 10),
       "raw player $i gets NetStream.Play.UnpublishNotify");
}
note(sprintf 'UnpublishNotify after %.2f s', Time::HiRes::time() - $t0);
my ($code, $out, $err) = result_of($cli, 40);
like($err // '', qr/server: NetStream\.Play\.UnpublishNotify/, 'rtmp play gets UnpublishNotify');
like($err // '', qr/done \(stream unpublished\)/, 'and ends there');
my $p2 = main::raw_publish($port, 'gone', my $got);
ok($p2, 'a new publisher gets NetStream.Publish.Start at once') or diag($got =~ s/[^ -~]+/./gr);
# The players stayed on the (now idle) stream: they get the new publisher's media.
my @tags = grep { ($_->[0] == 8 || $_->[0] == 9) && $_->[1] <= 2000 } flv_tags(media());
send_bytes($p2, join '', map { rtmp_chunk($_->[0] == 8 ? 4 : 6, $_->[0], 1, $_->[2], timestamp => $_->[1]) } @tags);
cmp_ok(main::drain($raw[$_], 1), '>', 10_000, "raw player $_ gets the new publisher's media") for 0 .. 1;
--- error_log
/live: unpublish "gone"/



=== TEST 8: a publisher that resets its connection in the middle of a message
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; }
}
--- timeout: 90
--- run
my $port = $TEST_NGINX_RTMP_PORT;
my $pub = main::raw_publish($port, 'rst', my $got);
ok($pub, 'raw publisher publishes') or diag(($got // '') =~ s/[^ -~]+/./gr);
my @raw = map { main::raw_play($port, 'rst') } 1 .. 2;
ok($raw[$_], "raw player $_ plays") for 0 .. 1;
# 3 s of the test file, sent at once (metadata left out).
my @tags = grep { ($_->[0] == 8 || $_->[0] == 9) && $_->[1] <= 3000 } flv_tags(media());
my $bytes = join '', map { rtmp_chunk($_->[0] == 8 ? 4 : 6, $_->[0], 1, $_->[2], timestamp => $_->[1]) } @tags;
ok(send_bytes($pub, $bytes), sprintf('sent %d audio/video messages', scalar @tags));
cmp_ok(main::drain($raw[$_], 1), '>', 10_000, "raw player $_ gets media") for 0 .. 1;
# Half of a 20 kB video message: the header, then 100 bytes of it. Then an RST.
my $half = substr(rtmp_chunk(6, 9, 1, "\x17\x01\0\0\0" . ("\xab" x 20_000), timestamp => 3100), 0, 12 + 100);
ok(send_bytes($pub, $half), 'sent half a message');
Time::HiRes::sleep(0.2);
setsockopt($pub, Socket::SOL_SOCKET(), Socket::SO_LINGER(), pack('ii', 1, 0));
close $pub;
for my $i (0 .. 1) {
    ok(read_until($raw[$i], qr/NetStream\.Play\.UnpublishNotify/, 10),
       "raw player $i gets NetStream.Play.UnpublishNotify");
}
my $p2 = main::raw_publish($port, 'rst', my $got2);
ok($p2, 'a new publisher gets NetStream.Publish.Start at once') or diag(($got2 // '') =~ s/[^ -~]+/./gr);
my $log = main::error_log_text();
like($log, qr/closing: recv\(\) failed/, 'the publisher session is closed ("recv() failed")');
# A client's RST is ordinary: as nginx's stream/mail/http modules and nginx-rtmp-module do,
# c->log_error = NGX_ERROR_INFO logs ECONNRESET at info.
ok($log !~ /\[error\].*recv\(\) failed \(104: Connection reset by peer\)/,
   'a client RST is not logged at [error]');
--- error_log
/live: unpublish "rst"/
