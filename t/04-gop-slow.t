# GOP cache (players start at the last keyframe at once) and slow players (dropped to the next
# keyframe, then closed by "timeout", without hurting anyone else).
use lib 't/lib';
use Test::Nginx::Rtmp;
use JSON::PP ();

our $RTMP = Test::Nginx::Rtmp::repo_root() . '/target/release/rtmp';

# Our client's probe, as a hash.
sub probe {
    my ($url) = @_;
    my $out = `timeout 20 $main::RTMP probe --json --timeout 10 '$url' 2>&1`;
    my $j = eval { JSON::PP::decode_json($out) };
    return $j // { error => $out };
}

run_tests();

__DATA__

=== TEST 1: with the GOP cache a late player's first video frame is a keyframe, at once
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; gop_cache on; }
}
--- run
my $url = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/gop";
my $pub = publish($url, loop => 1);
ok(wait_published('gop'), 'FFmpeg publishes') or diag(publisher_log($pub));
sleep 1;    # the probes join mid-GOP
# The test media has a keyframe every 2 s: without a cache, three probes 0.7 s apart would wait
# for the next keyframe (0-2 s each); with it, each starts from the cached one.
for my $i (1 .. 3) {
    my $p = main::probe($url);
    ok($p->{video} && $p->{video}{keyframe_first}, "probe $i: first video frame is a keyframe")
        or diag(explain($p));
    ok($p->{video} && $p->{video}{sequence_header_first}, "probe $i: AVC header before frames");
    cmp_ok($p->{video} ? $p->{video}{first_frame_ms} : 1e9, '<', 400, "probe $i: first frame in < 400 ms");
    select(undef, undef, undef, 0.7);
}
my ($v, $a, $err) = count_frames($url, 3);
unlike($err, qr/non-existing PPS|no frame!|decode_slice/, 'FFmpeg decodes from the cached GOP');
cmp_ok($v, '>=', 40, 'video frames');



=== TEST 2: gop_cache off still starts players at a keyframe (wait_key)
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; gop_cache off; }
}
--- run
my $url = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/nogop";
my $pub = publish($url, loop => 1);
ok(wait_published('nogop'), 'FFmpeg publishes') or diag(publisher_log($pub));
sleep 1;    # the probe joins mid-GOP
my $p = main::probe($url);
ok($p->{video} && $p->{video}{keyframe_first}, 'first video frame is a keyframe') or diag(explain($p));



=== TEST 3: a player that stops reading loses frames, is closed on timeout; others keep playing
--- config
server {
    listen $TEST_NGINX_RTMP_PORT sndbuf=8k;
    timeout 4s;
    out_queue 64;
    application live { live on; }
}
--- run
my $port = $TEST_NGINX_RTMP_PORT;
my $url = "rtmp://127.0.0.1:$port/live/slow";
my $pub = publish($url, loop => 1);
ok(wait_published('slow'), 'FFmpeg publishes') or diag(publisher_log($pub));
my $s = rtmp_connect_raw($port);
setsockopt($s, Socket::SOL_SOCKET(), Socket::SO_RCVBUF(), 4096);
ok(rtmp_handshake($s), 'handshake');
send_bytes($s, rtmp_chunk(3, 20, 0, amf_str('connect') . amf_num(1)
    . amf_obj(app => amf_str('live'), tcUrl => amf_str("rtmp://127.0.0.1:$port/live"))));
send_bytes($s, rtmp_chunk(3, 20, 0, amf_str('createStream') . amf_num(2) . amf_null()));
send_bytes($s, rtmp_chunk(8, 20, 1, amf_str('play') . amf_num(3) . amf_null() . amf_str('slow')));
# Never read: the server's queue for this player fills while a normal player plays.
my ($v, $a, $err) = count_frames($url, 6);
cmp_ok($v, '>=', 100, 'the normal player gets its frames') or diag($err);
ok(is_closed($s, 15), 'the stuck player is closed');
is(wait_publisher($pub, 0), undef, 'publisher unaffected') or diag(publisher_log($pub));
--- error_log
dropping to the next keyframe
write timed out
