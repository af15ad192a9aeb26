# Live directives with the C module's semantics beyond the basics: drop_idle_publisher,
# interleave, wait_video, and write_merge (ours: players' media written together).
use lib 't/lib';
use Test::Nginx::Rtmp;
use JSON::PP ();

# A raw publisher: handshake, connect, createStream, publish $name; then silence.
sub raw_publisher {
    my ($port, $name) = @_;
    my $s = rtmp_connect_raw($port) or return;
    rtmp_handshake($s) or return;
    send_bytes($s, rtmp_chunk(3, 20, 0, amf_str('connect') . amf_num(1)
        . amf_obj(app => amf_str('live'), tcUrl => amf_str("rtmp://127.0.0.1:$port/live"))));
    read_until($s, qr/NetConnection\.Connect\.Success/, 5) or return;
    send_bytes($s, rtmp_chunk(3, 20, 0, amf_str('createStream') . amf_num(2) . amf_null()));
    read_until($s, qr/_result/, 5) or return;
    send_bytes($s, rtmp_chunk(8, 20, 1, amf_str('publish') . amf_num(3) . amf_null() . amf_str($name) . amf_str('live')));
    read_until($s, qr/NetStream\.Publish\.Start/, 5) or return;
    return $s;
}

run_tests();

__DATA__

=== TEST 1: drop_idle_publisher closes a publisher that sends no media; a busy one stays
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; drop_idle_publisher 1s; }
}
--- run
my $port = $TEST_NGINX_RTMP_PORT;
my $busy = publish("rtmp://127.0.0.1:$port/live/busy", loop => 1);
my $s = main::raw_publisher($port, 'idle');
ok($s, 'the raw publisher is publishing');
my $t0 = Time::HiRes::time();
ok(is_closed($s, 6), 'the idle publisher is closed');
cmp_ok(Time::HiRes::time() - $t0, '>=', 0.8, 'not before the idle time');
ok(wait_published('busy'), 'FFmpeg publishes') or diag(publisher_log($busy));
my ($v) = count_frames("rtmp://127.0.0.1:$port/live/busy", 2);
cmp_ok($v // 0, '>', 20, 'the busy publisher still publishes');
is(wait_publisher($busy, 0), undef, 'the busy publisher was not dropped') or diag(publisher_log($busy));
--- error_log
("drop_idle_publisher")



=== TEST 2: write_merge: players get every frame, in order, with merged writes
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; write_merge 200ms; }
}
--- run
my $url = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/m";
my $pub = publish($url, loop => 1);
ok(wait_published('m'), 'FFmpeg publishes') or diag(publisher_log($pub));
my ($v, $a, $err) = count_frames($url, 4);
cmp_ok($v, '>=', 90, 'video frames decoded') or diag($err);
cmp_ok($a, '>=', 150, 'audio frames decoded');
unlike($err, qr/error|non-existing/i, 'no decoding errors');



=== TEST 3: interleave on: audio and video on one chunk stream still decode
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; interleave on; }
}
--- run
my $url = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/i";
my $pub = publish($url, loop => 1);
ok(wait_published('i'), 'FFmpeg publishes') or diag(publisher_log($pub));
my ($v, $a, $err) = count_frames($url, 3);
cmp_ok($v, '>=', 60, 'video frames decoded') or diag($err);
cmp_ok($a, '>=', 100, 'audio frames decoded');
unlike($err, qr/error|non-existing/i, 'no decoding errors');



=== TEST 4: bad values fail nginx -t with file:line
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; write_merge soon; }
}
--- must_die: invalid value "soon" in "write_merge" directive
--- must_die_line: 3



=== TEST 5: wait_video on (GOP cache off): no audio before the first video frame
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; gop_cache off; wait_video on; }
}
--- run
my $url = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/w";
my $pub = publish($url, loop => 1);
ok(wait_published('w'), 'FFmpeg publishes') or diag(publisher_log($pub));
sleep 1;    # join mid-GOP
# Joining mid-GOP: video waits for a keyframe (up to 2 s of this media), and audio with it.
my $out = `timeout 20 @{[rtmp_cli()]} probe $url --json 2>&1`;
my $r = eval { JSON::PP::decode_json($out) } // {};
ok($r->{video} && $r->{audio}, 'both tracks arrived') or diag($out);
cmp_ok($r->{audio}{first_frame_ts} // -1, '>=', ($r->{video}{first_frame_ts} // 1e9) - 50,
    'the first audio frame is not older than the first video frame');
cmp_ok($r->{audio}{first_frame_ms} // 0, '>=', ($r->{video}{first_frame_ms} // 1e9) - 1,
    'and did not arrive before it');
