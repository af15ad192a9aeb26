# Access rules (allow/deny publish|play by address, IPv4 and IPv6), max_connections across
# workers (shared memory, kept over a reload), and access_log/log_format, as nginx-rtmp-module.
# Clients from other addresses are raw sockets bound to 127.0.0.2, 127.0.0.3… (all loopback).
use lib 't/lib';
use Test::Nginx::Rtmp;
use IO::Socket::IP;
use IO::Socket::UNIX;
use Socket qw(SOL_SOCKET SO_LINGER SOCK_STREAM);

# A raw client from $o{from} (source address) to $o{to}:$port, connected to $app.
# Returns (socket, "Success" | "Rejected" | undef).
sub try_connect {
    my ($port, $app, %o) = @_;
    my $s = $o{unix}
        ? IO::Socket::UNIX->new(Peer => $o{unix}, Type => SOCK_STREAM, Timeout => 5)
        : IO::Socket::IP->new(PeerHost => $o{to} // '127.0.0.1', PeerPort => $port, Proto => 'tcp',
                              Timeout => 5, ($o{from} ? (LocalHost => $o{from}) : ()));
    return unless $s;
    binmode $s;
    rtmp_handshake($s) or return ($s, undef);
    my $url = "rtmp://127.0.0.1:$port/$app";
    send_bytes($s, rtmp_chunk(3, 20, 0, amf_cmd('connect', 1, amf_obj(app => amf_str($app),
        flashVer => amf_str('LNX 9,0,124,2'), tcUrl => amf_str($url))))) or return ($s, undef);
    my $got = read_until($s, qr/NetConnection\.Connect\.(Success|Rejected)/, 5) // return ($s, undef);
    return ($s, $got =~ /Connect\.Success/ ? 'Success' : 'Rejected');
}

# createStream, then publish or play $name; returns the status code that came back
# ("NetStream.Publish.Start", "NetStream.Play.Failed", …) or '' on timeout.
sub request {
    my ($s, $cmd, $name) = @_;
    my $msid = rtmp_create_stream($s, 2) // return '';
    my $payload = $cmd eq 'publish'
        ? amf_cmd('publish', 3, amf_null(), amf_str($name), amf_str('live'))
        : amf_cmd('play', 3, amf_null(), amf_str($name));
    send_bytes($s, rtmp_chunk(8, 20, $msid, $payload)) or return '';
    my $got = read_until($s, qr/(NetStream\.(?:Publish\.(?:Start|BadName)|Play\.(?:Start|Failed|StreamNotFound)))/, 5)
        // return '';
    $got =~ /(NetStream\.(?:Publish\.(?:Start|BadName)|Play\.(?:Start|Failed|StreamNotFound)))/;
    return $1;
}

# Connects from $from and publishes or plays $name on $app; returns the status code, and whether
# the server then closed the connection.
sub attempt {
    my ($port, $app, $cmd, $name, %o) = @_;
    my ($s, $r) = try_connect($port, $app, %o);
    return ("connect: " . ($r // 'failed')) unless $s && ($r // '') eq 'Success';
    my $code = request($s, $cmd, $name);
    my $closed = is_closed($s, $code =~ /Start/ ? 0.3 : 3);
    close $s;
    return ($code, $closed);
}

# Closes a socket with a TCP reset (SO_LINGER 0): an abrupt disconnect.
sub reset_close {
    my ($s) = @_;
    setsockopt($s, SOL_SOCKET, SO_LINGER, pack('ii', 1, 0));
    close $s;
}

# (pid => accepted, pid => refused) from the "connect" and "too many connections" log lines.
sub per_worker {
    my (%connects, %refused);
    for (log_lines(qr/rtmp: (connect app=|closing: limit: too many)/)) {
        next unless /(\d+)#\d+: \*\d+ rtmp: (connect|closing)/;
        $2 eq 'connect' ? $connects{$1}++ : $refused{$1}++;
    }
    my %accepted = map { $_ => $connects{$_} - ($refused{$_} // 0) } keys %connects;
    return (\%accepted, \%refused);
}

# (live workers, workers shutting down) of a master.
sub workers_of {
    my ($master) = @_;
    my (@live, @old);
    for (`ps --ppid $master -o pid=,args= 2>/dev/null`) {
        next unless /^\s*(\d+)\s+nginx: worker process(.*)/;
        if ($2 =~ /shutting down/) { push @old, $1 } else { push @live, $1 }
    }
    return (\@live, \@old);
}

sub file_lines {
    my ($f) = @_;
    open my $fh, '<', $f or return ();
    return map { chomp; $_ } <$fh>;
}

run_tests();

__DATA__

=== TEST 1: allow publish 127.0.0.1 then deny publish all: others may not publish, anyone plays
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    listen unix:$TEST_NGINX_PREFIX/rtmp.sock;
    application live {
        live on;
        allow publish 127.0.0.1;
        deny publish all;
    }
}
--- run
my $port = $TEST_NGINX_RTMP_PORT;
my ($code, $closed) = main::attempt($port, 'live', 'publish', 'raw', from => '127.0.0.1');
is($code, 'NetStream.Publish.Start', '127.0.0.1 publishes');
($code, $closed) = main::attempt($port, 'live', 'publish', 'cam', from => '127.0.0.2');
is($code, 'NetStream.Publish.BadName', '127.0.0.2 is refused with an error status');
ok($closed, 'and closed');
($code, $closed) = main::attempt($port, 'live', 'play', 'cam', from => '127.0.0.2');
is($code, 'NetStream.Play.Start', '127.0.0.2 may play');
ok(!$closed, 'and stays connected');
# A unix-domain client has no address: rules do not apply (as in the C module).
($code) = main::attempt(0, 'live', 'publish', 'local', unix => "$TEST_NGINX_PREFIX/rtmp.sock");
is($code, 'NetStream.Publish.Start', 'a unix-socket client publishes');
my $url = "rtmp://127.0.0.1:$port/live/ff";
my $pub = publish($url, loop => 1);
ok(wait_published('ff'), 'FFmpeg publishes from 127.0.0.1') or diag(publisher_log($pub));
my ($v, $a, $err) = count_frames($url, 2);
cmp_ok($v, '>=', 40, 'FFmpeg publishes from 127.0.0.1 and plays') or diag($err, publisher_log($pub));
--- error_log
/\[info\].*access: publish "cam" denied to 127\.0\.0\.2 by "deny publish all" at \S*nginx\.conf:\d+,/
--- no_error_log
denied to 127.0.0.1



=== TEST 2: levels: an application's own rules come first, then the server's, then rtmp's
--- config
deny play 127.0.0.4;
server {
    listen $TEST_NGINX_RTMP_PORT;
    deny publish 127.0.0.2;
    application live {
        live on;
        deny play 127.0.0.3;
        allow publish 127.0.0.0/30;
    }
    application open {
        live on;
    }
}
--- run
my $port = $TEST_NGINX_RTMP_PORT;
my %want = (
    'live publish 127.0.0.2' => 'NetStream.Publish.Start',   # its own allow comes before the server's deny
    'live publish 127.0.0.5' => 'NetStream.Publish.Start',   # no rule matches
    'live play 127.0.0.3'    => 'NetStream.Play.Failed',     # its own rule
    'live play 127.0.0.4'    => 'NetStream.Play.Failed',     # rtmp level, inherited through the server
    'live play 127.0.0.1'    => 'NetStream.Play.Start',
    'open publish 127.0.0.2' => 'NetStream.Publish.BadName', # server level
    'open publish 127.0.0.1' => 'NetStream.Publish.Start',
    'open play 127.0.0.4'    => 'NetStream.Play.Failed',
    'open play 127.0.0.3'    => 'NetStream.Play.Start',
);
my $n = 0;
for my $k (sort keys %want) {
    my ($app, $cmd, $from) = split / /, $k;
    my ($code) = main::attempt($port, $app, $cmd, 's' . ++$n, from => $from);
    is($code, $want{$k}, $k);
}
--- error_log
/access: play "s\d+" denied to 127\.0\.0\.4 by "deny play 127\.0\.0\.4" at \S*nginx\.conf:\d+/



=== TEST 3: IPv6: allow play ::1, deny play all; an IPv4 client of a dual-stack socket matches IPv4 rules
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    listen [::1]:$TEST_NGINX_RTMP_PORT;
    application live {
        live on;
        allow play ::1;
        deny play all;
        deny publish ::1;
    }
}
server {
    listen [::]:$TEST_NGINX_RTMP_PORT2 ipv6only=off;
    application live {
        live on;
        allow publish 127.0.0.1;
        deny publish all;
    }
}
--- run
my ($p1, $p2) = ($TEST_NGINX_RTMP_PORT, $TEST_NGINX_RTMP_PORT2);
my ($code, $closed) = main::attempt($p1, 'live', 'play', 'six', to => '::1');
is($code, 'NetStream.Play.Start', '[::1] plays');
($code) = main::attempt($p1, 'live', 'play', 'six', from => '127.0.0.1');
is($code, 'NetStream.Play.Failed', '127.0.0.1 may not play (an IPv6 rule never matches IPv4)');
($code) = main::attempt($p1, 'live', 'publish', 'six', to => '::1');
is($code, 'NetStream.Publish.BadName', '[::1] may not publish');
my $pub = publish("rtmp://127.0.0.1:$p1/live/ff", loop => 1);
ok(wait_published('ff'), 'FFmpeg publishes') or diag(publisher_log($pub));
my ($v, $a, $err) = count_frames("rtmp://[::1]:$p1/live/ff", 2);
cmp_ok($v, '>=', 40, 'FFmpeg plays over IPv6') or diag($err);
# Dual-stack socket: 127.0.0.1 arrives as ::ffff:127.0.0.1 and matches "allow publish 127.0.0.1".
($code) = main::attempt($p2, 'live', 'publish', 'mapped', from => '127.0.0.1');
is($code, 'NetStream.Publish.Start', 'an IPv4-mapped peer matches an IPv4 allow');
($code) = main::attempt($p2, 'live', 'publish', 'mapped2', from => '127.0.0.2');
is($code, 'NetStream.Publish.BadName', 'and another IPv4-mapped peer the deny');
--- error_log
/access: play "six" denied to 127\.0\.0\.1 by "deny play all"/
/access: publish "six" denied to ::1 by "deny publish ::1"/
/access: publish "mapped2" denied to (::ffff:)?127\.0\.0\.2 by "deny publish all"/



=== TEST 4: max_connections 3 with 2 workers: the limit holds across workers; places come back
--- workers: 2
--- config
max_connections 3;
server {
    listen $TEST_NGINX_RTMP_PORT reuseport;
    application live { live on; }
}
--- run
my $port = $TEST_NGINX_RTMP_PORT;
my @held;
for my $i (1 .. 3) {
    my ($s, $r) = main::try_connect($port, 'live');
    is($r, 'Success', "connection $i accepted");
    push @held, $s;
}
# Over the limit, whichever worker takes the connection (reuseport spreads them).
for my $i (4 .. 12) {
    my ($s, $r) = main::try_connect($port, 'live');
    is($r, 'Rejected', "connection $i rejected (NetConnection.Connect.Rejected)");
    ok($s && is_closed($s, 3), "connection $i closed");
}
my ($acc, $ref) = main::per_worker();
ok((grep { ($acc->{$_} // 0) < 3 } keys %$ref), 'a worker holding fewer than 3 connections refused one')
    or diag(explain([$acc, $ref]));
# A clean close and a reset each give a place back.
close shift @held;
main::reset_close(shift @held);
my @new;
for my $i (1 .. 2) {
    my $r = wait_until(sub {
        my ($s, $r) = main::try_connect($port, 'live');
        push @new, $s if ($r // '') eq 'Success';
        ($r // '') eq 'Success';
    }, 5, 0.2);
    ok($r, "a new connection is accepted after close $i");
}
my (undef, $r) = main::try_connect($port, 'live');
is($r, 'Rejected', 'the limit is reached again');
# A client that never sends connect does not count.
my @idle = map { IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port) } 1 .. 3;
close $_ for @held, @new;
# The closes reach the workers when they do: poll (each try holds its 3 places until it ends).
my @again;
wait_until(sub {
    my @try = map { [main::try_connect($port, 'live')] } 1 .. 3;
    @again = map { $_->[1] // 'failed' } @try;
    "@again" eq 'Success Success Success';
}, 10, 0.3);
is("@again", 'Success Success Success', 'all places are free again');
--- error_log
/\[info\].*rtmp: closing: limit: too many connections: 4 > 3 \("max_connections"\)/



=== TEST 5: max_connections keeps its count over a reload
--- workers: 2
--- config
max_connections 2;
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; }
}
--- reloads
--- run
my $port = $TEST_NGINX_RTMP_PORT;
my $master = main::master_pid();
my ($old) = main::workers_of($master);
my @held = map { (main::try_connect($port, 'live'))[0] } 1 .. 2;
ok(kill('HUP', $master), 'reload');
my %was = map { $_ => 1 } @$old;
ok(wait_until(sub { my ($live) = main::workers_of($master); @$live == 2 && !grep { $was{$_} } @$live }, 15),
   'new workers started');
my (undef, $r) = main::try_connect($port, 'live');
is($r, 'Rejected', "the old workers' 2 sessions still count");
close $_ for @held;
ok(wait_until(sub { ((main::try_connect($port, 'live'))[1] // '') eq 'Success' }, 10, 0.2),
   'once they close, the new workers accept');



=== TEST 6: access_log with a custom log_format, combined, reopen; access_log off
--- config
log_format mine '$connection|$remote_addr|$app|$name|$args|$command|$bytes_received|$bytes_sent|'
                '$session_time|$session_readable_time|$msec|$flashver|$tcurl|$time_local';
access_log logs/rtmp.log mine;
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        live on;
        access_log logs/rtmp.log mine;
        access_log logs/combined.log;
    }
    application quiet {
        live on;
        access_log off;
    }
}
--- run
my $port = $TEST_NGINX_RTMP_PORT;
my $log = "$TEST_NGINX_PREFIX/logs/rtmp.log";
# The publisher's session starts after $t_start and before $t_up (its publish is logged), and
# ends after $t_down (it is told to stop) and before $t_end: its logged $session_time must lie
# between what the test measured, however long FFmpeg takes to start or count_frames to return
# (the GOP cache can hand a player 2 s of media at once).
my $t_start = Time::HiRes::time();
my $pub = publish("rtmp://127.0.0.1:$port/live/cam?token=abc", loop => 1);
ok(wait_published('cam'), 'FFmpeg publishes') or diag(publisher_log($pub));
my $t_up = Time::HiRes::time();
my ($v, undef, $err) = count_frames("rtmp://127.0.0.1:$port/live/cam", 2);
cmp_ok($v, '>=', 40, 'played') or diag($err, publisher_log($pub));
# Hold the publisher at least 3.2 s after its publish, so that its session time is 3 s or more.
my $left = $t_up + 3.2 - Time::HiRes::time();
Time::HiRes::sleep($left) if $left > 0;
my $t_down = Time::HiRes::time();
stop($pub);
my $t_end = Time::HiRes::time();
my ($qs) = main::try_connect($port, 'quiet');
main::request($qs, 'play', 'hush');
close $qs;
my ($ns) = main::try_connect($port, 'live');
close $ns;
my @lines;
# The harness's port probe (connected, said nothing) is a session too: app and name empty.
wait_until(sub { @lines = main::file_lines($log); @lines >= 4 }, 10);
is(scalar @lines, 4, 'one line per session, none for "quiet"') or diag(explain(\@lines));
like($lines[0], qr/^\d+\|127\.0\.0\.1\|\|\|\|NONE\|0\|0\|/, 'the probe: nothing received, nothing sent');
@lines = grep { (split /\|/)[2] } @lines;
my %by = map { my @f = split /\|/, $_, -1; ($f[5] => \@f) } @lines;
my $p = $by{PUBLISH} || [];
is("@$p[2..5]", 'live cam token=abc PUBLISH', 'publisher: app, name, args, command');
cmp_ok($p->[6] // 0, '>', 30_000, 'publisher: bytes received');
cmp_ok($p->[7] // 0, '>', 0, 'publisher: bytes sent');
# Whole seconds, truncated: at least the time it was surely connected (less 0.1 s for clock
# granularity), at most the time it may have been (plus 1 s for rounding up).
my ($lo, $hi) = (int($t_down - $t_up - 0.1), int($t_end - $t_start) + 1);
my $st = $p->[8] // -1;
ok($st =~ /^\d+$/ && $st >= $lo && $st <= $hi,
   sprintf('publisher: session time %s s, measured %.2f-%.2f s', $st, $t_down - $t_up, $t_end - $t_start))
    or diag("want $lo..$hi");
like($p->[9] // '', qr/^\d+s$/, 'publisher: readable time');
like($p->[10] // '', qr/^\d{10}\.\d{3}$/, '$msec');
like($p->[11] // '', qr/^FMLE\/3\.0/, '$flashver');
is($p->[12] // '', "rtmp://127.0.0.1:$port/live", '$tcurl');
like($p->[13] // '', qr{^\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}$}, '$time_local');
my $q = $by{PLAY} || [];
is("@$q[1..5]", '127.0.0.1 live cam  PLAY', 'player: address, app, name, no args, command');
cmp_ok($q->[7] // 0, '>', 20_000, 'player: bytes sent');
my $n = $by{NONE} || [];
is("@$n[2..5]", 'live   NONE', 'a session that did nothing');
my @combined;
wait_until(sub { @combined = main::file_lines("$TEST_NGINX_PREFIX/logs/combined.log"); @combined >= 3 }, 5);
is(scalar @combined, 3, "the application's second log has its 3 sessions");
like($combined[0] // '', qr{^127\.0\.0\.1 \[[^\]]+\] (PUBLISH|PLAY|NONE) "live" "(cam)?" "(token=abc)?" - \d+ \d+ "" "[^"]*" \((\d+m )?\d+s\)$},
     'combined has the C module\'s layout') or diag(explain(\@combined));
# nginx -s reopen: the module writes to the new file.
rename $log, "$log.1" or die $!;
kill 'USR1', main::master_pid();
ok(wait_until(sub { -e $log }, 5), 'reopen created a new file');
# The master reopens, then tells the worker, which logs "reopening logs" and reopens before it
# accepts another connection.
ok(wait_log(qr/\[notice\].*reopening logs/, 2, 10), 'the worker reopened its files too');
my ($rs) = main::try_connect($port, 'live');
close $rs;
ok(wait_until(sub { main::file_lines($log) == 1 }, 5), 'the next session is logged in the new file');
is(scalar(main::file_lines("$log.1")), 4, 'the old file is left alone');



=== TEST 7: bad access rules fail nginx -t with file:line
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        allow publish 10.0.0.300;
    }
}
--- must_die: invalid address "10\.0\.0\.300" in "allow" directive
--- must_die_line: 4



=== TEST 8: an unknown action fails nginx -t
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    deny record all;
}
--- must_die: unexpected access specified: "record"
--- must_die_line: 3



=== TEST 9: a prefix too long fails nginx -t
--- config
deny play ::1/129;
--- must_die: invalid prefix length in "::1/129" in "deny" directive
--- must_die_line: 1



=== TEST 10: max_connections must be a number, once
--- config
max_connections lots;
--- must_die: invalid number
--- must_die_line: 1



=== TEST 11: max_connections set twice (server level is the rtmp-level value, as in the C module)
--- config
max_connections 10;
server {
    listen $TEST_NGINX_RTMP_PORT;
    max_connections 20;
}
--- must_die: "max_connections" directive is duplicate
--- must_die_line: 4



=== TEST 12: an unknown variable in log_format
--- config
log_format bad '$app $nope';
--- must_die: unknown variable "nope" in "log_format" directive
--- must_die_line: 1



=== TEST 13: an unknown log format in access_log
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    access_log logs/x.log nosuch;
}
--- must_die: unknown log format "nosuch" in "access_log" directive
--- must_die_line: 3



=== TEST 14: a duplicate log_format name
--- config
log_format combined '$app';
--- must_die: duplicate "log_format" name "combined"
--- must_die_line: 1



=== TEST 15: low address bits warn, as nginx does
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; allow play 10.1.2.3/8; }
}
--- run
ok(1, 'starts');
--- error_log
low address bits of 10.1.2.3/8 are meaningless
