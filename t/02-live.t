# live on: FFmpeg publishes, FFmpeg / ffprobe / rtmpdump / GStreamer play.
use lib 't/lib';
use Test::Nginx::Rtmp;

# Decoder complaints FFmpeg prints when it gets a broken H.264 or AAC stream.
our $DECODE_ERRORS = qr/error while decoding|decode_slice|non-existing PPS|no frame!|concealing|Invalid data|corrupt|missing picture|Number of bands/i;

run_tests();

__DATA__

=== TEST 1: publish, then ffprobe sees h264 640x360 and aac
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    chunk_size 4096;
    application live { live on; }
}
--- run
my $url = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/test";
my $pub = publish($url, loop => 1);
ok(wait_published('test'), 'FFmpeg publishes') or diag(publisher_log($pub));
my $p = ffprobe_play($url, 10);
is($p->{video}, 'h264', 'video codec') or diag($p->{stderr});
is($p->{width}, 640, 'width');
is($p->{height}, 360, 'height');
is($p->{audio}, 'aac', 'audio codec');
is(wait_publisher($pub, 0), undef, 'publisher still running') or diag(publisher_log($pub));



=== TEST 2: a player decodes 4 s of frames without errors
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; }
}
--- run
my $url = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/test";
my $pub = publish($url, loop => 1);
ok(wait_published('test'), 'FFmpeg publishes') or diag(publisher_log($pub));
my ($v, $a, $err) = count_frames($url, 4);
cmp_ok($v, '>=', 50, 'video frames in 4 s') or diag($err);
cmp_ok($a, '>=', 50, 'audio frames in 4 s');
unlike($err, $main::DECODE_ERRORS, 'no decoding errors');
is(wait_publisher($pub, 0), undef, 'publisher still running') or diag(publisher_log($pub));



=== TEST 3: two players at once
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; }
}
--- run
my $url = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/test";
my $pub = publish($url, loop => 1);
ok(wait_published('test'), 'FFmpeg publishes') or diag(publisher_log($pub));
my @h = map { in_background(sub { count_frames($url, 4) }) } 1 .. 2;
for my $i (0 .. 1) {
    my ($v, $a, $err) = result_of($h[$i], 30);
    cmp_ok($v // 0, '>=', 50, "player $i: video frames") or diag($err);
    cmp_ok($a // 0, '>', 0, "player $i: audio frames");
    unlike($err // '', $main::DECODE_ERRORS, "player $i: no decoding errors");
}



=== TEST 4: player arrives before the publisher
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; }
}
--- run
my $url = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/test";
my $h = in_background(sub { count_frames($url, 8) });
ok(wait_playing('test'), 'the player is there first');
my $pub = publish($url, loop => 1);
my ($v, $a, $err) = result_of($h, 40);
cmp_ok($v // 0, '>', 0, 'early player gets video frames') or diag($err);
cmp_ok($a // 0, '>', 0, 'early player gets audio frames');
unlike($err // '', $main::DECODE_ERRORS, 'no decoding errors');



=== TEST 5: publisher leaves and comes back
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; }
}
--- run
my $url = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/test";
my $pub = publish($url);
ok(wait_published('test'), 'first publisher publishes') or diag(publisher_log($pub));
is(wait_publisher($pub, 0), undef, 'first publisher running') or diag(publisher_log($pub));
stop($pub);
ok(wait_unpublished('test'), 'the server saw it leave');
my $pub2 = publish($url, loop => 1);
ok(wait_published('test', 2), 'second publisher accepted') or diag(publisher_log($pub2));
is(wait_publisher($pub2, 0), undef, 'second publisher running') or diag(publisher_log($pub2));
my ($v, $a, $err) = count_frames($url, 3);
cmp_ok($v, '>', 25, 'player gets the new stream') or diag($err);
unlike($err, $main::DECODE_ERRORS, 'no decoding errors');



=== TEST 6: a second publisher on the same name is rejected
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; }
}
--- run
my $url = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/test";
my $pub = publish($url, loop => 1);
ok(wait_published('test'), 'FFmpeg publishes') or diag(publisher_log($pub));
my $pub2 = publish($url, loop => 1);
my $code = wait_publisher($pub2, 10);
ok(defined $code, 'second publisher gives up within 10 s');
isnt($code // 0, 0, 'second publisher fails') or diag(publisher_log($pub2));
is(wait_publisher($pub, 0), undef, 'first publisher still running') or diag(publisher_log($pub));
my ($v, $a, $err) = count_frames($url, 3);
cmp_ok($v, '>', 25, 'stream still plays') or diag($err);
unlike($err, $main::DECODE_ERRORS, 'no decoding errors');



=== TEST 7: other names and other applications are separate streams
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; }
    application live2 { live on; }
}
--- run
my $base = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT";
my $pub = publish("$base/live/a", loop => 1);
my $pub2 = publish("$base/live2/a", loop => 1);
ok(wait_published('a', 2), 'both publish') or diag(publisher_log($pub), publisher_log($pub2));
is(wait_publisher($pub2, 0), undef, 'same name in another application is accepted')
    or diag(publisher_log($pub2));
for my $app (qw(live live2)) {
    my $p = ffprobe_play("$base/$app/a", 10);
    is($p->{video}, 'h264', "$app/a plays video") or diag($p->{stderr});
    is($p->{audio}, 'aac', "$app/a plays audio");
}
my $other = ffprobe_play("$base/live/b", 3);
ok(!$other->{video} && !$other->{audio}, 'live/b (not published) has no streams');



=== TEST 8: rtmpdump, GStreamer and FFmpeg play together
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; }
}
--- run
my $url = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/test";
my $pub = publish($url, loop => 1);
ok(wait_published('test'), 'FFmpeg publishes') or diag(publisher_log($pub));
my $dump = in_background(sub { rtmpdump_play($url, 4) });
my $gst = in_background(sub { gst_play($url, 5) });
my ($v, $a, $err) = count_frames($url, 4);
cmp_ok($v, '>=', 50, 'ffmpeg: video frames') or diag($err);
unlike($err, $main::DECODE_ERRORS, 'ffmpeg: no decoding errors');

my ($file, $code, $derr) = result_of($dump, 30);
ok($file && -s $file, 'rtmpdump: wrote a file') or diag("rtmpdump exit ", $code // '?', ": ", $derr // '');
my $p = ffprobe_play($file // '/nonexistent', 10);
is($p->{video}, 'h264', 'rtmpdump: recorded h264') or diag($p->{stderr});
is($p->{audio}, 'aac', 'rtmpdump: recorded aac');
my ($fv) = $file ? count_frames($file, 3) : (0);
cmp_ok($fv, '>', 25, 'rtmpdump: recording decodes');

my ($g) = result_of($gst, 30);
$g ||= {};
is($g->{status}, 124, 'gstreamer: still playing when stopped') or diag($g->{stderr});
cmp_ok($g->{buffers} // 0, '>', 25, 'gstreamer: video buffers');
