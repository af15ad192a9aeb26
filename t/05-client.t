# Our client CLI (target/release/rtmp) against the module: publish, play, probe, bench, errors.
use lib 't/lib';
use Test::Nginx::Rtmp;
use JSON::PP ();

our $RTMP = Test::Nginx::Rtmp::repo_root() . '/target/release/rtmp';

run_tests();

__DATA__

=== TEST 1: rtmp publish is seen by ffprobe; rtmp play saves a decodable FLV
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; }
}
--- run
my $url = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/cli";
my $media = media();
my $pid = fork // die;
if (!$pid) { open(STDERR, ">", "/dev/null"); exec("timeout", "20", $main::RTMP, "publish", $url, "--file", $media, "--loop") or exit 127 }
ok(wait_published('cli'), 'rtmp publish publishes');
my $p = ffprobe_play($url, 10);
is($p->{video}, 'h264', 'ffprobe: video');
is($p->{audio}, 'aac', 'ffprobe: audio');
my $out = Test::Nginx::Rtmp::tmp_dir() . "/cli.flv";
my $rc = system("timeout 20 $main::RTMP play '$url' --duration 3 --out $out 2>/dev/null");
is($rc, 0, 'rtmp play exits 0');
my $frames = `ffprobe -v error -count_frames -select_streams v -show_entries stream=nb_read_frames -of csv=p=0 $out`;
cmp_ok($frames + 0, '>=', 40, 'saved FLV decodes');
kill 'TERM', $pid;
waitpid $pid, 0;



=== TEST 2: readable errors and exit codes
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; }
}
--- run
my $port = $TEST_NGINX_RTMP_PORT;
my $url = "rtmp://127.0.0.1:$port/live/busy";
my $pub = publish($url, loop => 1);
ok(wait_published('busy'), 'FFmpeg publishes first') or diag(publisher_log($pub));
my $err = `timeout 20 $main::RTMP publish '$url' --file @{[media()]} 2>&1`;
isnt($? >> 8, 0, 'second publisher fails');
like($err, qr/NetStream\.Publish\.BadName/, 'BadName is reported');
$err = `timeout 20 $main::RTMP probe rtmp://127.0.0.1:$port/nosuchapp/x 2>&1`;
isnt($? >> 8, 0, 'unknown application fails');
like($err, qr/Connect\.Rejected/, 'rejection is reported');



=== TEST 3: rtmp bench: 100 players with an in-process publisher all get frames
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; }
}
--- run
my $url = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/bench";
my $json = `timeout 60 $main::RTMP bench '$url' --players 100 --publish-file @{[media()]} --duration 4 --json 2>/dev/null`;
my $r = eval { JSON::PP::decode_json($json) } // {};
is($r->{players_connected}, 100, 'all players connected') or diag($json);
is($r->{players_with_frames}, 100, 'all players got frames');
is($r->{players_failed}, 0, 'no failures');



=== TEST 4: rtmp publish without a file sends a synthetic stream of the asked bitrate
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; }
}
--- run
my $url = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/synth";
my $pid = fork // die;
if (!$pid) { open(STDERR, ">", "/dev/null"); exec("timeout", "20", $main::RTMP, "publish", $url, "--bitrate", "1000", "--fps", "25", "--gop", "50") or exit 127 }
ok(wait_published('synth'), 'rtmp publish publishes');
# A player that joins in the moment between the publish and the sequence headers gets metadata
# without the SPS's fields: probe until the server has them (at most 10 s).
my ($probe, $p);
wait_until(sub {
    $probe = `timeout 20 $main::RTMP probe --json '$url' 2>/dev/null`;
    $p = eval { JSON::PP::decode_json($probe) } // {};
    $p->{video} && $p->{audio} && defined $p->{metadata}{width};
}, 10, 0.2);
is($p->{video}{codec}, 'AVC', 'probe: H.264') or diag($probe);
is($p->{audio}{codec}, 'AAC', 'probe: AAC');
is($p->{metadata}{width}, 640, 'metadata built from its SPS');
my $out = Test::Nginx::Rtmp::tmp_dir() . "/synth.flv";
system("timeout 20 $main::RTMP play '$url' --duration 4 --out $out >/dev/null 2>&1");
my @tags = flv_tags($out);
my ($vbytes, $frames) = (0, 0);
for (grep { $_->[0] == 9 } @tags) { $vbytes += length $_->[2]; $frames++ }
my $span = ($tags[-1][1] - $tags[0][1]) / 1000;
cmp_ok($frames, '>=', 60, 'video frames arrive');
my $kbps = $span > 0 ? $vbytes * 8 / 1000 / $span : 0;
cmp_ok($kbps, '>', 700, "video bitrate near 1000 kbit/s ($kbps)");
cmp_ok($kbps, '<', 1400, 'and not far above');
kill 'TERM', $pid;
waitpid $pid, 0;
