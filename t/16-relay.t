# Relays started by notify redirects to rtmp:// URLs (arut's on_play / on_publish answers): the
# worker pulls a stream from, or pushes one to, another RTMP server over its own outgoing
# connection. Both ends are applications of the same nginx here; FFmpeg publishes and plays.
use lib 't/lib';
use Test::Nginx::Rtmp;
use Test::Nginx::HttpRecorder;
use Digest::MD5 ();
use IO::Socket::INET;
use POSIX ();

sub recorder { Test::Nginx::HttpRecorder->new("$ENV{TEST_NGINX_PREFIX}/calls.jsonl", $ENV{TEST_NGINX_HTTP_PORT}) }

sub count_lines { scalar log_lines(shift) }

sub slurp_file { local (@ARGV, $/) = @_; <> // '' }

# A hostile "origin" on $port for the relays to connect to: the n-th connection never answers
# (1), answers the handshake then announces chunk size 0 (2), or sends junk after it (3).
sub bad_origin {
    my $port = shift;
    my $srv = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port, Listen => 8, ReuseAddr => 1)
        or die "bad origin: $!";
    my $pid = fork() // die "fork: $!";
    if (!$pid) {
        my $n = 0;
        my @keep;
        while (my $c = $srv->accept) {
            $n++;
            push @keep, $c;
            next if $n == 1;
            my $c0c1 = '';
            while (length $c0c1 < 1537) { sysread($c, $c0c1, 1537 - length $c0c1, length $c0c1) or last }
            syswrite($c, "\x03" . ("\0" x 1536) . substr($c0c1, 1, 1536));
            if ($n == 2) {
                syswrite($c, "\x02" . "\0\0\0" . "\0\0\x04" . "\x01" . "\0\0\0\0" . "\0\0\0\0");
            } else {
                syswrite($c, join '', map { chr(($_ * 7919) % 256) } 1 .. 20_000);
            }
        }
        POSIX::_exit(0);
    }
    close $srv;
    return $pid;
}

run_tests();

__DATA__

=== TEST 1: on_play redirects to rtmp://: the edge pulls the stream once for all its players, and stops with the last
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application origin { live on; }
    application edge {
        live on;
        on_play http://127.0.0.1:$TEST_NGINX_HTTP_PORT/redirect/rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/origin/src;
    }
}
--- run
my $rec = recorder();
my $base = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT";
my $pub = publish("$base/origin/src", loop => 1, timeout => 60);
ok(wait_published('src'), 'the origin publishes') or diag(publisher_log($pub));
my $second = in_background(sub { my @r = count_frames("$base/edge/show", 6); "$r[0] $r[1]" });
my ($v, $a, $err) = count_frames("$base/edge/show", 4);
cmp_ok($v, '>=', 50, 'a redirected player decodes the pulled video') or diag($err);
cmp_ok($a, '>=', 50, 'and its audio');
unlike($err, qr/error|invalid/i, 'without decoding errors');
my ($both) = result_of($second, 30);
my ($v2, $a2) = split / /, $both // '0 0';
cmp_ok($v2, '>=', 80, 'a second player at the same time decodes too');
is(count_lines(qr/relay: pull "show" from rtmp:\/\/127\.0\.0\.1:\d+\/origin\/src,/), 1, 'one pull for both players');
ok(wait_until(sub { count_lines(qr/relay pull "show" from .*: closing: no player left/) == 1 }, 10),
    'the pull ends with its last player');
($v) = count_frames("$base/edge/show", 3);
cmp_ok($v, '>=', 30, 'a later player starts a new pull');
is(count_lines(qr/relay: pull "show" from \S+,/), 2, 'a second pull then');
ok(scalar($rec->calls('play')) >= 3, 'every play asked on_play');
stop($pub);
--- error_log
/relay: pull "show" from rtmp:\/\/127\.0\.0\.1:\d+\/origin\/src: NetStream\.Play\.Start/



=== TEST 2: the pulled stream ends when the origin's publisher leaves; its players are told
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application origin { live on; }
    application edge {
        live on;
        on_play http://127.0.0.1:$TEST_NGINX_HTTP_PORT/redirect/rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/origin/src;
    }
}
--- run
my $rec = recorder();
my $base = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT";
my $cli = rtmp_cli();
my $pub = publish("$base/origin/src", loop => 1, timeout => 60);
ok(wait_published('src'), 'the origin publishes') or diag(publisher_log($pub));
my $player = in_background(sub { scalar `timeout 30 $cli play $base/edge/show --duration 20 2>&1` });
ok(wait_until(sub { count_lines(qr/relay: pull "show" .*: NetStream\.Play\.Start/) == 1 }, 10), 'the pull runs');
sleep 2;
stop($pub);
my ($out) = result_of($player, 30);
$out //= '';
like($out, qr/UnpublishNotify|Unpublish|Play\.Stop|closed/i, 'the edge player hears that the stream ended');
ok(wait_until(sub { count_lines(qr/relay pull "show" .*: closing: the server ended the stream/) == 1 }, 10),
    'the relay closes when the origin stream ends');
--- error_log
/live: unpublish "show"/



=== TEST 3: on_publish redirects to rtmp://: the stream is published here and pushed there; the push ends with it
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        live on;
        on_publish http://127.0.0.1:$TEST_NGINX_HTTP_PORT/redirect/rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/mirror/copy;
    }
    application mirror { live on; idle_streams off; }
}
--- run
my $rec = recorder();
my $base = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT";
my $pub = publish("$base/live/cam", loop => 1, timeout => 60);
ok(wait_until(sub { count_lines(qr/relay: push "cam" to .*: NetStream\.Publish\.Start/) == 1 }, 10), 'the push runs');
sleep 1;
my ($v, $a, $err) = count_frames("$base/mirror/copy", 4);
cmp_ok($v, '>=', 50, 'the pushed copy plays on the other side') or diag($err);
cmp_ok($a, '>=', 50, 'with audio');
unlike($err, qr/error|invalid/i, 'without decoding errors');
($v) = count_frames("$base/live/cam", 3);
cmp_ok($v, '>=', 30, 'the stream plays here too');
stop($pub);
ok(wait_until(sub { count_lines(qr/relay push "cam" to .*: closing: the published stream ended/) == 1 }, 10),
    'the push closes when the publisher leaves');
ok(wait_until(sub { count_lines(qr/live: unpublish "copy"/) == 1 }, 10), 'and the copy is unpublished there');
--- error_log
/relay: push "cam" to rtmp:\/\/127\.0\.0\.1:\d+\/mirror\/copy,/



=== TEST 4: notify_relay_redirect on: the local name is the MD5 of the URL, shared by every player sent there
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application origin { live on; }
    application edge {
        live on;
        notify_relay_redirect on;
        on_play http://127.0.0.1:$TEST_NGINX_HTTP_PORT/redirect/rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/origin/src;
    }
}
--- run
my $rec = recorder();
my $base = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT";
my $md5 = Digest::MD5::md5_hex("rtmp://127.0.0.1:$ENV{TEST_NGINX_RTMP_PORT}/origin/src");
my $pub = publish("$base/origin/src", loop => 1, timeout => 60);
ok(wait_published('src'), 'the origin publishes') or diag(publisher_log($pub));
my $other = in_background(sub { my @r = count_frames("$base/edge/b", 5); $r[0] });
my ($v) = count_frames("$base/edge/a", 4);
cmp_ok($v, '>=', 50, 'a player of "a" decodes the pulled stream');
my ($vb) = result_of($other, 30);
cmp_ok($vb // 0, '>=', 60, 'a player of "b" at the same time too');
is(count_lines(qr/relay: pull "$md5" from \S+,/), 1, 'both share one pull named by the MD5 of the URL');
stop($pub);



=== TEST 5: relays that cannot work: a host name, a closed port (its player is told), a refused remote publish; nothing else breaks
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application origin { live on; }
    application byname {
        live on;
        on_play http://127.0.0.1:$TEST_NGINX_HTTP_PORT/redirect/rtmp://origin.example/origin/src;
    }
    application closed {
        live on;
        on_play http://127.0.0.1:$TEST_NGINX_HTTP_PORT/redirect/rtmp://127.0.0.1:1/origin/src;
    }
    application noapp {
        live on;
        on_publish http://127.0.0.1:$TEST_NGINX_HTTP_PORT/redirect/rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/nosuchapp/x;
    }
}
--- run
my $rec = recorder();
my $base = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT";
my $cli = rtmp_cli();
my $pub = publish("$base/origin/src", loop => 1, timeout => 60);
ok(wait_published('src'), 'the origin publishes') or diag(publisher_log($pub));
my $out = `timeout 20 $cli play $base/byname/x --duration 2 2>&1`;
isnt($? >> 8, 0, 'a redirect to a host name fails the play');
like($out, qr/StreamNotFound/, 'with StreamNotFound');
$out = `timeout 20 $cli play $base/closed/x --duration 10 2>&1`;
like($out, qr/StreamNotFound/, 'a pull that cannot connect: its player is told StreamNotFound');
ok(count_lines(qr/relay pull "x" from rtmp:\/\/127\.0\.0\.1:1\/origin\/src: closing: /) == 1,
    'the relay ends with a log line');
ok(count_lines(qr/closing: relay: pull "x" from rtmp:\/\/127\.0\.0\.1:1\/origin\/src failed/) == 1,
    'and so does its player');
my $p2 = publish("$base/noapp/y", timeout => 20);
ok(wait_until(sub { count_lines(qr/relay push "y" to .*: closing: the server refused/) == 1 }, 10),
    'a remote connect refusal ends the push');
my ($v) = count_frames("$base/noapp/y", 3);
cmp_ok($v, '>=', 30, 'the local stream goes on without its push');
($v) = count_frames("$base/origin/src", 3);
cmp_ok($v, '>=', 30, 'the origin stream was never disturbed');
stop($p2);
stop($pub);
--- error_log
/rtmp:\/\/origin\.example\/origin\/src: the host must be an IP address/



=== TEST 6: a hostile origin (silent, chunk size 0, junk): each relay ends with one info line, other streams play on
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    timeout 3s;
    application origin { live on; }
    application edge {
        live on;
        on_play http://127.0.0.1:$TEST_NGINX_HTTP_PORT/redirect/rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT2/app/src;
    }
}
--- run
my $rec = recorder();
my $bad = bad_origin($ENV{TEST_NGINX_RTMP_PORT2});
my $base = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT";
my $cli = rtmp_cli();
my $pub = publish("$base/origin/src", loop => 1, timeout => 60);
ok(wait_published('src'), 'the origin publishes') or diag(publisher_log($pub));
my $guard = in_background(sub { my @r = count_frames("$base/origin/src", 10); $r[0] });
for my $i (1 .. 3) {
    # The first player outstays the relay's handshake timeout.
    my $secs = $i == 1 ? 6 : 1;
    `timeout 15 $cli play $base/edge/x$i --duration $secs 2>&1`;
    ok(wait_until(sub { count_lines(qr/relay pull "x$i" from .*: closing: /) == 1 }, 10), "relay $i ends");
}
is(count_lines(qr/relay pull "x1" from .*: closing: handshake timed out/), 1, 'a silent origin: handshake timed out');
is(count_lines(qr/relay pull "x2" from .*: closing: protocol error: chunk/), 1, 'chunk size 0: protocol error');
is(count_lines(qr/relay pull "x3" from .*: closing: (protocol error|undecodable)/), 1, 'junk: protocol error');
my ($gv) = result_of($guard, 30);
cmp_ok($gv // 0, '>=', 200, 'a player of another stream decoded all along');
kill 'KILL', $bad;
waitpid($bad, 0);
stop($pub);



=== TEST 7: nginx -s reload while a pull and a push run: the old worker finishes them, the new one relays
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application origin { live on; }
    application edge {
        live on;
        on_play http://127.0.0.1:$TEST_NGINX_HTTP_PORT/redirect/rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/origin/src;
    }
    application live {
        live on;
        on_publish http://127.0.0.1:$TEST_NGINX_HTTP_PORT/redirect/rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/mirror/copy;
    }
    application mirror { live on; }
}
--- run
my $rec = recorder();
my $base = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT";
my $src = publish("$base/origin/src", loop => 1, timeout => 60);
my $cam = publish("$base/live/cam", loop => 1, timeout => 60);
ok(wait_published('src') && wait_published('copy'), 'the origin publishes, the push runs')
    or diag(publisher_log($src), publisher_log($cam));
my $pulled = in_background(sub { my @r = count_frames("$base/edge/show", 8); $r[0] });
my $pushed = in_background(sub { my @r = count_frames("$base/mirror/copy", 8); $r[0] });
# Both players must be on the old worker when the reload comes.
ok(wait_playing('show') && wait_playing('copy'), 'both players play');
sleep 2;
my $master = (slurp_file("$ENV{TEST_NGINX_PREFIX}/logs/nginx.pid") =~ /(\d+)/)[0];
ok($master && kill('HUP', $master), 'reload');
my ($v1) = result_of($pulled, 30);
my ($v2) = result_of($pushed, 30);
cmp_ok($v1 // 0, '>=', 150, 'the pulled stream played through the reload');
cmp_ok($v2 // 0, '>=', 150, 'the pushed copy played through the reload');
stop($cam);
stop($src);
# Streams live in one worker: the new worker needs its own origin publisher.
$src = publish("$base/origin/src", loop => 1, timeout => 60);
ok(wait_published('src', 2), 'the origin publishes on the new worker') or diag(publisher_log($src));
my ($v, $a, $err) = count_frames("$base/edge/again", 3);
cmp_ok($v, '>=', 30, 'after the reload a new redirected player pulls') or diag($err);
stop($src);
--- reloads
1
--- error_log
/reconfiguring/



=== TEST 8: a push from an on_publish redirect reconnects when its target comes back (the C module never retries it)
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        live on;
        push_reconnect 300ms;
        on_publish http://127.0.0.1:$TEST_NGINX_HTTP_PORT/redirect/rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT2/target/copy;
    }
}
--- run
my $rec = recorder();
my $aux = aux_nginx("server { listen \$AUX_PORT; application target { live on; } }", port => $TEST_NGINX_RTMP_PORT2);
my $pub = publish("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/cam", loop => 1, timeout => 60);
ok(wait_until(sub { count_lines(qr/relay: push "cam" to .*: NetStream\.Publish\.Start/) == 1 }, 10), 'the push runs');
ok(aux_stop($aux), 'the target goes away');
ok(wait_until(sub { count_lines(qr/relay: push "cam" to \S+: again in 300 ms/) >= 1 }, 10), 'the push notices and retries');
ok(aux_start($aux), 'the target comes back');
ok(wait_until(sub { count_lines(qr/relay: push "cam" to .*: NetStream\.Publish\.Start/) == 2 }, 10), 'the push runs again');
my ($v) = count_frames("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT2/target/copy", 3);
cmp_ok($v, '>=', 40, 'and the copy plays there');
stop($pub);
