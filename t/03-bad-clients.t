# Broken and hostile clients: each must lose its connection (or be ignored) while the worker stays
# up and a normal publisher and player keep working in the same nginx.
use lib 't/lib';
use Test::Nginx::Rtmp;
use Time::HiRes ();

# Publishes to live/$name, plays 2 s of it and checks frames arrive.
sub stream_works {
    my ($port, $name) = @_;
    $name ||= 'after';
    my $url = "rtmp://127.0.0.1:$port/live/$name";
    my $before = () = log_lines(qr/rtmp: live: publish "\Q$name\E" \(/);
    my $pub = publish($url, loop => 1);
    ok(wait_published($name, $before + 1), "FFmpeg publishes ($url)") or diag(publisher_log($pub));
    my ($v, $a, $err) = count_frames($url, 2);
    cmp_ok($v, '>', 0, "publish and play still work ($url)") or diag($err, publisher_log($pub));
    stop($pub);
}

sub connect_cmd {
    my ($port) = @_;
    return amf_str('connect') . amf_num(1)
        . amf_obj(app => amf_str('live'), tcUrl => amf_str("rtmp://127.0.0.1:$port/live"));
}

run_tests();

__DATA__

=== TEST 1: garbage instead of a handshake, while a stream plays
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; }
}
--- run
my $url = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/test";
my $pub = publish($url, loop => 1);
ok(wait_published('test'), 'FFmpeg publishes') or diag(publisher_log($pub));
my $s = rtmp_connect_raw($TEST_NGINX_RTMP_PORT);
send_bytes($s, "\xff" x 4000);
ok(is_closed($s, 5), 'garbage client is closed');
my ($v, $a, $err) = count_frames($url, 2);
cmp_ok($v, '>', 0, 'the running stream still plays') or diag($err);
is(wait_publisher($pub, 0), undef, 'publisher unaffected') or diag(publisher_log($pub));
stop($pub);
main::stream_works($TEST_NGINX_RTMP_PORT);



=== TEST 2: truncated handshake is closed by timeout
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    timeout 3s;
    application live { live on; }
}
--- run
my $s = rtmp_connect_raw($TEST_NGINX_RTMP_PORT);
my $t0 = Time::HiRes::time();
send_bytes($s, "\x03" . ("\0" x 100));
ok(is_closed($s, 8), 'half handshake is closed');
my $took = Time::HiRes::time() - $t0;
cmp_ok($took, '>=', 2, 'not before the timeout') ;
cmp_ok($took, '<', 7, 'soon after the 3 s timeout');

my $idle = rtmp_connect_raw($TEST_NGINX_RTMP_PORT);
ok(is_closed($idle, 8), 'silent client is closed by timeout');
main::stream_works($TEST_NGINX_RTMP_PORT);



=== TEST 3: Set Chunk Size 0x7fffffff, then a huge message header
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; }
}
--- run
my $s = rtmp_connect_raw($TEST_NGINX_RTMP_PORT);
ok(rtmp_handshake($s), 'handshake');
send_bytes($s, rtmp_chunk(2, 1, 0, pack('N', 0x7fffffff)));
send_bytes($s, rtmp_chunk(3, 9, 1, "\x17" x 65536, length => 0xffffff, chunk_size => 0x7fffffff));
is_closed($s, 3);
close $s;

my $s2 = rtmp_connect_raw($TEST_NGINX_RTMP_PORT);
ok($s2 && rtmp_handshake($s2), 'a new client still handshakes');
main::stream_works($TEST_NGINX_RTMP_PORT);



=== TEST 4: Set Chunk Size 0 and a negative one
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; }
}
--- run
for my $size (0, 0x80000000) {
    my $s = rtmp_connect_raw($TEST_NGINX_RTMP_PORT);
    ok(rtmp_handshake($s), "handshake ($size)");
    send_bytes($s, rtmp_chunk(2, 1, 0, pack('N', $size)));
    send_bytes($s, rtmp_chunk(3, 20, 0, main::connect_cmd($TEST_NGINX_RTMP_PORT)));
    is_closed($s, 2);
}
main::stream_works($TEST_NGINX_RTMP_PORT);



=== TEST 5: message longer than max_message is closed
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    max_message 1M;
    application live { live on; }
}
--- run
my $s = rtmp_connect_raw($TEST_NGINX_RTMP_PORT);
ok(rtmp_handshake($s), 'handshake');
send_bytes($s, rtmp_chunk(3, 20, 0, "\x02" x 4096, length => 2 * 1024 * 1024));
ok(is_closed($s, 5), 'client announcing a 2 MB message is closed');
main::stream_works($TEST_NGINX_RTMP_PORT);



=== TEST 6: truncated AMF in connect is closed
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; }
}
--- run
my $s = rtmp_connect_raw($TEST_NGINX_RTMP_PORT);
ok(rtmp_handshake($s), 'handshake');
my $bad = amf_str('connect') . amf_num(1) . "\x03" . pack('n', 3) . 'app' . "\x02" . pack('n', 16) . 'li';
send_bytes($s, rtmp_chunk(3, 20, 0, $bad));
ok(is_closed($s, 5), 'client with an undecodable connect is closed');
main::stream_works($TEST_NGINX_RTMP_PORT);



=== TEST 7: client vanishes in the middle of a message
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; }
}
--- run
for (1 .. 5) {
    my $s = rtmp_connect_raw($TEST_NGINX_RTMP_PORT);
    rtmp_handshake($s);
    my $msg = rtmp_chunk(3, 20, 0, main::connect_cmd($TEST_NGINX_RTMP_PORT));
    send_bytes($s, substr($msg, 0, 20));
    close $s;
}
my $s = rtmp_connect_raw($TEST_NGINX_RTMP_PORT);
send_bytes($s, "\x03" . ("\0" x 700));
close $s;
main::stream_works($TEST_NGINX_RTMP_PORT);



=== TEST 8: publisher killed without unpublishing, then the name is free again
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; }
}
--- run
my $url = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/test";
my $player = in_background(sub { count_frames($url, 4) });
my $pub = publish($url, loop => 1);
ok(wait_published('test') && wait_playing('test'), 'FFmpeg publishes and plays') or diag(publisher_log($pub));
sleep 1;    # media flows for a while
kill 'KILL', -$pub, $pub;
wait_publisher($pub, 5);
my ($v) = result_of($player, 30);
ok(defined $v, 'player ends after the publisher vanished');
ok(wait_unpublished('test'), 'the server ends the killed publish');
main::stream_works($TEST_NGINX_RTMP_PORT, 'test');
