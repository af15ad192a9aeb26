# Handshakes: the simple (version 0) one byte by byte, and the FP9 digest one that FFmpeg and
# librtmp (rtmpdump) use.
use lib 't/lib';
use Test::Nginx::Rtmp;

run_tests();

__DATA__

=== TEST 1: simple handshake, then connect
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; }
}
--- run
my $s = rtmp_connect_raw($TEST_NGINX_RTMP_PORT);
ok($s, 'connects');
my $h = rtmp_handshake($s);
ok($h, 'handshake completes');
is($h->{s0}, 3, 'S0 is version 3');
is(length $h->{s1}, 1536, 'S1 is 1536 bytes');
is(length $h->{s2}, 1536, 'S2 is 1536 bytes');
is(unpack('H*', substr($h->{s2}, 0, 4)), unpack('H*', substr($h->{c1}, 0, 4)), 'S2 echoes the time of C1');
ok(substr($h->{s2}, 8) eq substr($h->{c1}, 8), 'S2 echoes the random bytes of C1');

my $connect = amf_str('connect') . amf_num(1)
    . amf_obj(app => amf_str('live'), tcUrl => amf_str("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live"),
              flashVer => amf_str('LNX 9,0,124,2'), objectEncoding => amf_num(0));
ok(send_bytes($s, rtmp_chunk(3, 20, 0, $connect)), 'sends connect');
my $got;
ok(read_until($s, qr/NetConnection\.Connect\.Success/, 5, $got), 'connect answered with success')
    or diag(unpack 'H*', substr($got // '', 0, 200));



=== TEST 2: handshake split in small writes
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; }
}
--- run
my $s = rtmp_connect_raw($TEST_NGINX_RTMP_PORT);
my $c1 = pack('NN', 0, 0) . ('x' x 1528);
for my $piece (unpack '(a100)*', "\x03" . $c1) {
    send_bytes($s, $piece);
    select(undef, undef, undef, 0.01);
}
my $s0s1s2 = read_bytes($s, 1 + 1536 + 1536, 5);
ok(defined $s0s1s2, 'S0 S1 S2 arrive');
is(ord($s0s1s2 // "\0"), 3, 'S0 is version 3');



=== TEST 3: FFmpeg (digest handshake) publishes and ffprobe plays
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; }
}
--- run
my $url = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/test";
my $pub = publish($url, loop => 1);
ok(wait_published('test'), 'FFmpeg publishes') or diag(publisher_log($pub));
my $p = ffprobe_play($url, 10);
is($p->{video}, 'h264', 'video is h264') or diag($p->{stderr});
is($p->{audio}, 'aac', 'audio is aac');
is(wait_publisher($pub, 0), undef, 'publisher still running') or diag(publisher_log($pub));
stop($pub);



=== TEST 4: rtmpdump (librtmp) plays
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; }
}
--- run
my $url = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/test";
my $pub = publish($url, loop => 1);
ok(wait_published('test'), 'FFmpeg publishes') or diag(publisher_log($pub));
my ($file, $code, $err) = rtmpdump_play($url, 3);
ok(-s $file, 'rtmpdump wrote a file') or diag("rtmpdump exit $code: $err");
my $p = ffprobe_play($file, 10);
is($p->{video}, 'h264', 'recorded video is h264') or diag($p->{stderr});
is($p->{width}, 640, 'recorded width');
is($p->{audio}, 'aac', 'recorded audio is aac');
stop($pub);
