# VOD: `play DIR ...` serves FLV and MP4 files (FFmpeg, rtmpdump, our client and the raw RTMP player
# of Test::Nginx::Vod, which reads every message): all frames, start and seek to the keyframe at or
# before, pause/resume, HEVC as Enhanced RTMP to players that announced it, hostile files, names that
# try to leave the play directories, and the fall through to live of a real config (`play /dir;`
# beside `live on`), subdirectories (FFmpeg's app/instance URLs and names with slashes, symlinks,
# escapes refused); `play http://...` entries served by an http{} block of the same nginx or a server
# of the test (played while they download, entries in order, failures, play_local_path).
# scripts/test runs this file beside another suite, so no check here races the clock (TEST 16's is a
# lower bound, TEST 7's counts 3 s of live with a wide margin). Pacing, the first frame of a download
# and joining a running download are timed in t/26-vod.t, which runs alone.
use lib 't/lib';
use Test::Nginx::Rtmp;
use Test::Nginx::Vod qw(make_files make_hevc_mp4 file_frames raw_player raw_cmd raw_play wait_msg wait_each
                        status_of level_of is_frame is_key meta_num);
use File::Copy ();
use File::Path ();

run_tests();

__DATA__

=== TEST 1: FFmpeg plays FLV and MP4 (name, name.flv, mp4:name.mp4, name.mp4, moov at the end) from the second of two play directories, every frame
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application vod {
        play vod1 vod2;
    }
}
--- timeout: 120
--- run
File::Path::make_path("$TEST_NGINX_PREFIX/vod1");
my $dir = make_files('vod2');
my ($fv, $fa) = file_frames("$dir/test.flv");
my ($mv, $ma) = file_frames("$dir/test.mp4");
cmp_ok($fv, '>=', 240, "the FLV has $fv video and $fa audio frames");
my $base = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/vod";
my %jobs;
for my $name ('test', 'test.flv', 'mp4:test.mp4', 'test.mp4', 'mp4:late') {
    $jobs{$name} = in_background(sub { count_frames("$base/$name", 15) });
}
for my $name (sort keys %jobs) {
    my ($v, $a, $err) = result_of($jobs{$name}, 40);
    my ($wv, $wa) = $name =~ /mp4/ ? ($mv, $ma) : ($fv, $fa);
    cmp_ok($v, '>=', $wv - 2, "$name: $v of the file's $wv video frames");
    cmp_ok($v, '<=', $wv, "$name: no video frame twice");
    cmp_ok($a, '>=', $wa - 3, "$name: $a of the file's $wa audio frames");
    unlike($err, qr/error|invalid/i, "$name: FFmpeg decoded without errors") or diag($err);
}
my @lines = log_lines(qr/rtmp: play: "[^"]+" from /);
my @test_lines = grep { /play: "(?:mp4:)?test[^"]*" from / } @lines;
is(scalar(@test_lines), 4, 'four plays of "test" were logged');
is(scalar(grep { m{from "\Q$TEST_NGINX_PREFIX\E/vod2/test\.(?:flv|mp4)"} } @test_lines), 4,
    'each file was found in the second directory') or diag(join "\n", @test_lines);
is(scalar(log_lines(qr/rtmp: play: "[^"]+" complete/)), 5, 'five plays ran to the end');
--- no_error_log
[error]



=== TEST 2: start and seek land on the keyframe at or before the target, timestamps go on from there; rtmpdump --start
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application vod {
        play vod;
    }
}
--- run
make_files('vod');
# rtmpdump plays from 6.5 s while the raw players seek.
my $out = "$TEST_NGINX_PREFIX/dump.flv";
my $dump = in_background(sub { Test::Nginx::Rtmp::run_cmd(
    ['rtmpdump', '-q', '-r', "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/vod/test", '--start', '6.5', '--timeout', '5',
     '-o', $out], timeout => 20) });
for my $name ('test', 'mp4:test') {
    my $r = raw_player($TEST_NGINX_RTMP_PORT, 'vod') or BAIL_OUT("raw player: $@");
    raw_play($r, $name, 4500);
    my $f = wait_msg($r, \&is_frame, 5);
    ok($f && is_key($f), "$name: play from 4.5 s starts with a keyframe");
    is($f && $f->{ts}, 4000, "$name: at 4000 ms, the keyframe before 4.5 s (the C module jumps to the next one)");
    wait_msg($r, sub { 0 }, 1);
    raw_cmd($r, 'seek', amf_num(2100));
    my $n = wait_msg($r, sub { status_of($_[0]) eq 'NetStream.Seek.Notify' }, 5);
    ok($n, "$name: seek answers NetStream.Seek.Notify");
    my $st = wait_msg($r, sub { status_of($_[0]) }, 5);
    is(status_of($st // {}), 'NetStream.Play.Start', "$name: then Play.Start");
    my $hdr = wait_msg($r, sub { $_[0]{type} == 9 }, 5);
    ok($hdr && !is_frame($hdr), "$name: the sequence header again after the seek");
    $f = wait_msg($r, \&is_frame, 5);
    ok($f && is_key($f), "$name: after the seek, a keyframe first");
    is($f && $f->{ts}, 2000, "$name: seek to 2.1 s lands at 2000 ms");
    raw_cmd($r, 'seek', amf_num(0));
    wait_msg($r, sub { status_of($_[0]) eq 'NetStream.Seek.Notify' }, 5);
    $f = wait_msg($r, \&is_frame, 5);
    ok($f && $f->{ts} <= 100, "$name: seek to 0 restarts at the first frame (" . ($f ? $f->{ts} : 'none') . ' ms)');
}
my ($code, undef, $err) = result_of($dump, 30);
my @v = grep { $_->[0] == 9 } flv_tags($out);
my ($frame) = grep { ord(substr($_->[2], 1, 1)) == 1 } @v;
ok($frame, "rtmpdump --start 6.5 got video (exit $code)") or diag($err);
ok($frame && (ord($frame->[2]) >> 4) == 1, 'its first frame is a keyframe');
# librtmp adds its --start to every timestamp it writes.
my $at = $frame ? $frame->[1] - 6500 : -1;
cmp_ok($at, '<=', 6500, "at $at ms: at or before 6.5 s");
cmp_ok($at, '>=', 6000, 'at the keyframe of 6 s');
my $frames = grep { ord(substr($_->[2], 1, 1)) == 1 } @v;
cmp_ok($frames, '>=', 95, "rtmpdump got the rest of the file ($frames video frames from 6 s)");
--- no_error_log
[error]



=== TEST 3: pause stops sending (Pause.Notify), unpause resumes where it paused (Unpause.Notify); closeStream stops the play
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application vod {
        play vod;
    }
}
--- run
make_files('vod');
my $r = raw_player($TEST_NGINX_RTMP_PORT, 'vod') or BAIL_OUT("raw player: $@");
raw_play($r, 'test');
wait_msg($r, sub { 0 }, 2);
raw_cmd($r, 'pause', amf_bool(1), amf_num(2000));
ok(wait_msg($r, sub { status_of($_[0]) eq 'NetStream.Pause.Notify' }, 5), 'Pause.Notify');
my $last = (grep { is_frame($_) } @{ $r->{msgs} })[-1];
my $n0 = @{ $r->{msgs} };
wait_msg($r, sub { 0 }, 2.5);
my @during = grep { $_->{type} == 8 || $_->{type} == 9 } @{ $r->{msgs} }[$n0 .. $#{ $r->{msgs} }];
is(scalar @during, 0, 'no media while paused');
raw_cmd($r, 'pause', amf_bool(0), amf_num(2000));
ok(wait_msg($r, sub { status_of($_[0]) eq 'NetStream.Unpause.Notify' }, 5), 'Unpause.Notify');
my $f = wait_msg($r, \&is_frame, 5);
ok($f, 'media again after unpause');
is($f && $f->{ts}, $last->{ts} + 40, 'the next frame after the last one sent before the pause');

# While that play goes on, another is stopped by closeStream.
my $r2 = raw_player($TEST_NGINX_RTMP_PORT, 'vod') or BAIL_OUT("raw player: $@");
raw_play($r2, 'test');
wait_msg($r2, \&is_frame, 5);
raw_cmd($r2, 'closeStream');
ok(wait_msg($r2, sub { status_of($_[0]) eq 'NetStream.Play.Stop' }, 5), 'closeStream: Play.Stop');
my $n1 = @{ $r2->{msgs} };
wait_msg($r2, sub { 0 }, 2);
is(scalar(grep { $_->{type} == 9 } @{ $r2->{msgs} }[$n1 .. $#{ $r2->{msgs} }]), 0, 'nothing after closeStream');
ok(wait_log(qr/rtmp: play: "test" closed/, 1, 5), 'the play is closed');

my $end = wait_msg($r, sub { status_of($_[0]) eq 'NetStream.Play.Stop' }, 15);
ok($end, 'the play still ends');
my $frames = grep { is_frame($_) } @{ $r->{msgs} };
cmp_ok($frames, '>=', 248, "every video frame in all ($frames)");
--- no_error_log
[error]



=== TEST 4: HEVC in MP4: Enhanced RTMP (hvc1) to a player that announced it, legacy codec 12 to others
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application vod {
        play vod;
    }
}
--- run
my $mp4 = make_hevc_mp4('vod');
SKIP: {
    skip 'FFmpeg could not make an HEVC MP4', 6 unless $mp4;
    # The two players side by side.
    my @enh = (1, 0);
    my @players;
    for my $enh (@enh) {
        my $r = raw_player($TEST_NGINX_RTMP_PORT, 'vod', hvc1 => $enh) or BAIL_OUT("raw player: $@");
        raw_play($r, 'mp4:hevc');
        push @players, $r;
    }
    my @ends = wait_each(\@players, sub { status_of($_[0]) eq 'NetStream.Play.Stop' }, 20);
    for my $i (0 .. $#enh) {
        my ($enh, $r, $end) = ($enh[$i], $players[$i], $ends[$i]);
        ok($end, ($enh ? 'hvc1' : 'legacy') . ': played to the end');
        my @v = grep { $_->{type} == 9 } @{ $r->{msgs} };
        my $what = $enh ? 'Enhanced RTMP hvc1' : 'legacy codec id 12';
        my $good = grep { $enh ? ((ord($_->{data}) & 0x80) && substr($_->{data}, 1, 4) eq 'hvc1')
                               : (!(ord($_->{data}) & 0x80) && (ord($_->{data}) & 0x0f) == 12) } @v;
        is($good, scalar @v, "every video message is $what (" . scalar(@v) . ')');
        cmp_ok(scalar(grep { is_frame($_) } @v), '>=', 20, 'with frames');
    }
}
--- no_error_log
[error]



=== TEST 5: hostile files (truncated, fragmented, garbage, empty): an error status to that player, an info line, the worker and other players unaffected
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application vod {
        play vod;
    }
}
--- timeout: 90
--- run
my $dir = make_files('vod');
my $pid = worker_pid();
my $good = in_background(sub { count_frames("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/vod/test", 15) });
my $data = Test::Nginx::Rtmp::slurp("$dir/late.mp4");
my $write = sub { open my $fh, '>', "$dir/$_[0]" or die; binmode $fh; print $fh $_[1]; close $fh };
$write->('nomoov.mp4', substr($data, 0, int(length($data) * 0.6)));
$write->('garbage.flv', join('', map { chr int rand 256 } 1 .. 5000));
$write->('empty.flv', '');
$write->('zerobox.mp4', pack('N', 24) . 'ftypisom' . pack('N', 0) . 'isom' . 'mp41' . pack('N', 0) . 'moov' . ("\0" x 64));
$write->('huge.mp4', pack('N', 24) . 'ftypisom' . pack('N', 0) . 'isom' . 'mp41' . pack('N', 0x7fffff00) . 'moov' . ("\0" x 64));
Test::Nginx::Rtmp::run_cmd(['ffmpeg', '-v', 'error', '-y', '-i', "$dir/test.flv", '-c', 'copy', '-movflags',
                            'frag_keyframe+empty_moov', "$dir/frag.mp4"], timeout => 30);
my $fast = Test::Nginx::Rtmp::slurp("$dir/test.mp4");
$write->('cut.mp4', substr($fast, 0, int(length($fast) * 0.5)));
for my $name (qw(nomoov.mp4 garbage.flv empty mp4:zerobox mp4:huge frag.mp4)) {
    my $r = raw_player($TEST_NGINX_RTMP_PORT, 'vod') or BAIL_OUT("raw player: $@");
    raw_play($r, $name);
    my $m = wait_msg($r, sub { level_of($_[0]) eq 'error' }, 5);
    is($m && status_of($m), 'NetStream.Play.Failed', "$name: NetStream.Play.Failed");
    ok(is_closed($r->{sock}, 5), "$name: that player is closed");
    ok(!grep({ $_->{type} == 9 } @{ $r->{msgs} }), "$name: no video was sent");
}
like(join("\n", log_lines(qr/play "frag\.mp4"/)), qr/fragmented/, 'the log line says the MP4 is fragmented');
like(join("\n", log_lines(qr/play "nomoov\.mp4"/)), qr/truncated|moov/, 'and that the other one is truncated');
my $r = raw_player($TEST_NGINX_RTMP_PORT, 'vod') or BAIL_OUT("raw player: $@");
raw_play($r, 'mp4:cut');
my $f = wait_msg($r, sub { level_of($_[0]) eq 'error' }, 15);
is($f && status_of($f), 'NetStream.Play.Failed', 'an MP4 cut in its media: Play.Failed where the data ends');
like($f ? $f->{data} : '', qr/truncated/, 'saying the file is truncated');
ok(wait_msg($r, sub { status_of($_[0]) eq 'NetStream.Play.Stop' }, 5), 'then Play.Stop');
my ($v, $a, $err) = result_of($good, 40);
cmp_ok($v, '>=', 248, "the player of a good file meanwhile got every frame ($v)");
is(worker_pid(), $pid, 'the same worker throughout');
--- no_error_log
[error]



=== TEST 6: names never leave the play directories; a name found nowhere is StreamNotFound (then closed) in an application without live
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application vod {
        play vod;
    }
}
--- run
make_files('vod');
File::Copy::copy(media(), "$TEST_NGINX_PREFIX/secret.flv");
for my $name ('../secret', '../secret.flv', 'mp4:../vod/test', '/etc/passwd', "$TEST_NGINX_PREFIX/secret", 'nothere', 'mp4:nothere') {
    my $r = raw_player($TEST_NGINX_RTMP_PORT, 'vod') or BAIL_OUT("raw player: $@");
    raw_play($r, $name);
    my $m = wait_msg($r, sub { level_of($_[0]) eq 'error' }, 5);
    is($m && status_of($m), 'NetStream.Play.StreamNotFound', "\"$name\": StreamNotFound");
    ok(is_closed($r->{sock}, 5), "\"$name\": closed");
    ok(!grep({ $_->{type} == 9 } @{ $r->{msgs} }), "\"$name\": no media");
}
--- no_error_log
[error]



=== TEST 7: a real config: play /dir beside live on in one application: files play, other names go to live (also names that cannot be file names)
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        live on;
        play $TEST_NGINX_PREFIX/videos;
        play_temp_path /tmp;
        play_local_path $TEST_NGINX_PREFIX/videos;
    }
}
--- run
make_files('videos');
my $pub = rtmp_publish("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/cam", media(), loop => 1);
ok(wait_log(qr/live: publish "cam"/, 1, 10), 'a live stream is published');
# A file of the play directory, played meanwhile.
my $file = in_background(sub { count_frames("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/test", 15) });
my $live = play_stats("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/cam", 3);
cmp_ok($live->{video}, '>=', 50, "the live stream plays through the same application ($live->{video} frames)");
ok(log_lines(qr/live: play "cam"/), 'live took that play');
my ($v) = result_of($file, 40);
cmp_ok($v, '>=', 248, "a file of the play directory plays whole ($v frames)");
stop($pub);
# A name the play module refuses as a file name (a segment starting with a dot) is still live's.
my $dot = rtmp_publish("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/.cam", media(), loop => 1);
ok(wait_log(qr/live: publish "\.cam"/, 1, 10), 'a live stream named ".cam" is published');
my $dl = play_stats("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/.cam", 3);
cmp_ok($dl->{video}, '>=', 50, "\".cam\" plays live, not refused as a file name ($dl->{video} frames)");
ok(log_lines(qr/live: play "\.cam"/), 'live took that play');
stop($dot);
--- no_error_log
[error]



=== TEST 8: a bad play directive fails nginx -t with its line
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application vod {
        play ftp://example.com/x;
    }
}
--- must_die: unsupported URL
--- must_die_line: 4



=== TEST 9: play with a bad URL, and play_temp_path twice
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application vod {
        play /tmp http://:80/x;
    }
}
--- must_die: invalid URL
--- must_die_line: 4



=== TEST 10: play_local_path twice
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application vod {
        play_local_path /tmp;
        play_local_path /var/tmp;
    }
}
--- must_die: duplicate
--- must_die_line: 5



=== TEST 11: play http://: FFmpeg plays FLV and MP4 (moov at the end too) fetched over HTTP, every frame; the request names the file and the client; no temporary file is left
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application vod {
        play http://127.0.0.1:$TEST_NGINX_HTTP_PORT/files/;
        play_temp_path vodtmp;
    }
}
--- http_config
server {
    listen $TEST_NGINX_HTTP_PORT;
    log_not_found off;
    location /files/ { alias $TEST_NGINX_PREFIX/remote/; }
}
--- timeout: 120
--- run
File::Path::make_path("$TEST_NGINX_PREFIX/vodtmp");
chmod 0777, "$TEST_NGINX_PREFIX/vodtmp";
my $dir = make_files('remote');
my ($fv, $fa) = file_frames("$dir/test.flv");
my ($mv, $ma) = file_frames("$dir/test.mp4");
my $base = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/vod";
my %jobs;
for my $name ('test', 'mp4:test', 'mp4:late') {
    $jobs{$name} = in_background(sub { count_frames("$base/$name", 15) });
}
for my $name (sort keys %jobs) {
    my ($v, $a, $err) = result_of($jobs{$name}, 40);
    my ($wv, $wa) = $name =~ /mp4/ ? ($mv, $ma) : ($fv, $fa);
    cmp_ok($v, '>=', $wv - 2, "$name: $v of the file's $wv video frames");
    cmp_ok($v, '<=', $wv, "$name: no video frame twice");
    cmp_ok($a, '>=', $wa - 3, "$name: $a of the file's $wa audio frames");
    unlike($err, qr/error|invalid/i, "$name: FFmpeg decoded without errors") or diag($err);
}
is(scalar(log_lines(qr/rtmp: play: "[^"]+" complete/)), 3, 'three plays ran to the end');
my @from = log_lines(qr/rtmp: play: "[^"]+" from "http:/);
# The three plays start at once: their lines come in any order.
is(scalar(grep { m{from "http://127\.0\.0\.1:\d+/files/(?:test\.flv|test\.mp4|late\.mp4)"} } @from), 3,
   'each played from its URL') or diag(join "\n", @from);
my $access = Test::Nginx::Rtmp::slurp("$TEST_NGINX_PREFIX/logs/access.log");
like($access, qr{"GET /files/test\.flv\?addr=127\.0\.0\.1 HTTP/1\.0" 200}, 'GET <prefix>/<file>?addr=<client> over HTTP/1.0');
like($access, qr{"GET /files/late\.mp4\?addr=127\.0\.0\.1 HTTP/1\.0" 200}, 'mp4:late fetched as late.mp4');
opendir(my $dh, "$TEST_NGINX_PREFIX/vodtmp");
is(join(',', grep { !/^\./ } readdir $dh), '', 'no temporary file left in play_temp_path');
--- no_error_log
[error]



=== TEST 12: a remote file played while it downloads (rate-limited): every frame, one complete download; a seek before the file is open is where the play starts (how soon the first frame comes: t/26-vod.t)
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application vod {
        play http://127.0.0.1:$TEST_NGINX_HTTP_PORT/files;
        play_temp_path vodtmp;
    }
}
--- http_config
server {
    listen $TEST_NGINX_HTTP_PORT;
    log_not_found off;
    location /files/ { alias $TEST_NGINX_PREFIX/remote/; limit_rate 32k; }
}
--- timeout: 60
--- run
File::Path::make_path("$TEST_NGINX_PREFIX/vodtmp");
chmod 0777, "$TEST_NGINX_PREFIX/vodtmp";
my $dir = make_files('remote');
my $size = -s "$dir/test.flv";
my $video = grep { $_->[0] == 9 && ord(substr($_->[2], 1, 1)) == 1 } flv_tags("$dir/test.flv");
my $r = raw_player($TEST_NGINX_RTMP_PORT, 'vod') or BAIL_OUT("raw player: $@");
raw_play($r, 'test');
ok(wait_msg($r, \&is_frame, 5), 'a frame arrives');
unlike(Test::Nginx::Rtmp::slurp("$TEST_NGINX_PREFIX/logs/access.log"), qr/test\.flv/, 'the download had not finished then (nothing in the access log yet)');
# Meanwhile, late.mp4 (its own download, read once the test.flv play ends).
my $late = raw_player($TEST_NGINX_RTMP_PORT, 'vod') or BAIL_OUT("raw player: $@");
raw_play($late, 'mp4:late');
raw_cmd($late, 'seek', amf_num(4500));
my $end = wait_msg($r, sub { status_of($_[0]) eq 'NetStream.Play.Stop' }, 20);
ok($end, 'Play.Stop at the end');
my $frames = grep { is_frame($_) } @{ $r->{msgs} };
is($frames, $video, "every video frame ($frames of $video)");
ok(!(grep { level_of($_) eq 'error' } @{ $r->{msgs} }), 'no error status');
like(Test::Nginx::Rtmp::slurp("$TEST_NGINX_PREFIX/logs/access.log"), qr/test\.flv\S* HTTP\/1\.0" 200 $size /, 'one complete download');

my $f = wait_msg($late, \&is_frame, 15);
ok($f && is_key($f), 'moov at the end: plays once the whole file is there, from a keyframe');
is($f && $f->{ts}, 4000, 'at the seek made before the file was open (4000 ms, the keyframe before 4.5 s)');
close $late->{sock};
wait_until(sub { opendir(my $dh, "$TEST_NGINX_PREFIX/vodtmp"); !grep { !/^\./ } readdir $dh }, 10);
opendir(my $dh, "$TEST_NGINX_PREFIX/vodtmp");
is(join(',', grep { !/^\./ } readdir $dh), '', 'no temporary file left');
--- no_error_log
[error]



=== TEST 13: entries in order: a 404 and a refused connection fall to the next entry; 404 everywhere is StreamNotFound, other failures Play.Failed
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application vod {
        play http://127.0.0.1:$TEST_NGINX_HTTP_PORT/none http://127.0.0.1:1/x http://127.0.0.1:$TEST_NGINX_HTTP_PORT/files;
    }
    application gone {
        play http://127.0.0.1:$TEST_NGINX_HTTP_PORT/none http://127.0.0.1:$TEST_NGINX_HTTP_PORT/nothere;
    }
    application broken {
        play http://127.0.0.1:$TEST_NGINX_HTTP_PORT/none http://127.0.0.1:1/x http://127.0.0.1:$TEST_NGINX_HTTP_PORT/teapot;
    }
}
--- http_config
server {
    listen $TEST_NGINX_HTTP_PORT;
    log_not_found off;
    location /files/ { alias $TEST_NGINX_PREFIX/remote/; }
    location /teapot/ { return 500; }
}
--- run
make_files('remote');
my $r = raw_player($TEST_NGINX_RTMP_PORT, 'vod') or BAIL_OUT("raw player: $@");
raw_play($r, 'test');
ok(wait_msg($r, \&is_frame, 5), 'the third entry plays after a 404 and a refused connection');
like(Test::Nginx::Rtmp::slurp("$TEST_NGINX_PREFIX/logs/access.log"), qr{GET /none/test\.flv\S* HTTP/1\.0" 404.*GET /files/test\.flv\S* HTTP/1\.0" 200}s,
     'the 404 entry was asked first');
ok(log_lines(qr{rtmp: play: http://127\.0\.0\.1:1/x/test\.flv: cannot connect}), 'the refused connection is logged');

$r = raw_player($TEST_NGINX_RTMP_PORT, 'gone') or BAIL_OUT("raw player: $@");
raw_play($r, 'test');
my $m = wait_msg($r, sub { level_of($_[0]) eq 'error' }, 5);
is($m && status_of($m), 'NetStream.Play.StreamNotFound', '404 on every entry: StreamNotFound');
ok(is_closed($r->{sock}, 5), 'and the connection closes (as a local name found nowhere)');

$r = raw_player($TEST_NGINX_RTMP_PORT, 'broken') or BAIL_OUT("raw player: $@");
raw_play($r, 'test');
$m = wait_msg($r, sub { level_of($_[0]) eq 'error' }, 5);
is($m && status_of($m), 'NetStream.Play.Failed', 'a 404, a refused connection and a 500: Play.Failed');
like($m ? $m->{data} : '', qr/answered 500/, 'saying what went wrong');
--- no_error_log
[error]



=== TEST 14: a server that closes mid-body, or stalls (netcall_timeout): the player gets Play.Failed (both players that share the download that closes), nothing is kept in play_local_path, no temporary file is left, a failed download is not joined; the worker goes on serving
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application vod {
        play http://127.0.0.1:$TEST_NGINX_RTMP_PORT2/v;
        play_temp_path vodtmp;
        play_local_path vodkeep;
        netcall_timeout 2s;
    }
}
--- timeout: 60
--- run
File::Path::make_path("$TEST_NGINX_PREFIX/vodtmp", "$TEST_NGINX_PREFIX/vodkeep", { mode => 0777 });
chmod 0777, "$TEST_NGINX_PREFIX/vodtmp", "$TEST_NGINX_PREFIX/vodkeep";
my $dir = make_files('remote');
my $body = Test::Nginx::Rtmp::slurp("$dir/test.flv");
# A server announcing the whole file: it sends half and closes once a second player joined the
# download (first connection), or sends half and stalls (second one).
my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $TEST_NGINX_RTMP_PORT2,
                                   Listen => 5, ReuseAddr => 1) or BAIL_OUT("listen: $!");
my $srv = in_background(sub {
    for my $mode ('close', 'stall') {
        my $c = $listen->accept or return;
        my $req = '';
        sysread($c, $req, 4096, length $req) while $req !~ /\r\n\r\n/;
        print $c "HTTP/1.0 200 OK\r\nContent-Length: " . length($body) . "\r\n\r\n" . substr($body, 0, length($body) / 2);
        if ($mode eq 'close') { wait_log(qr/joins the download of /, 1, 10); close $c } else { sleep 8; close $c }
    }
    return 1;
});
close $listen;
for my $mode ('close', 'stall') {
    my @players;
    for my $i (1 .. ($mode eq 'close' ? 2 : 1)) {
        my $r = raw_player($TEST_NGINX_RTMP_PORT, 'vod') or BAIL_OUT("raw player: $@");
        raw_play($r, 'test');
        ok(wait_msg($r, \&is_frame, 5), "$mode, player $i: the first half plays");
        push @players, $r;
    }
    for my $i (1 .. @players) {
        my $r = $players[$i - 1];
        my $m = wait_msg($r, sub { level_of($_[0]) eq 'error' }, 15);
        is($m && status_of($m), 'NetStream.Play.Failed', "$mode, player $i: then Play.Failed");
        like($m ? $m->{data} : '', $mode eq 'close' ? qr/closed after \d+ of \d+ bytes/ : qr/no data for 2000 ms/, "$mode, player $i: saying why");
        ok(wait_msg($r, sub { status_of($_[0]) eq 'NetStream.Play.Stop' }, 5), "$mode, player $i: and Play.Stop");
    }
}
is(scalar(log_lines(qr/joins the download of /)), 1, 'the second player joined the first download; the one after the failure fetched anew');
stop($srv->{pid});
opendir(my $dh, "$TEST_NGINX_PREFIX/vodkeep");
is(join(',', grep { !/^\./ } readdir $dh), '', 'nothing kept in play_local_path');
opendir($dh, "$TEST_NGINX_PREFIX/vodtmp");
is(join(',', grep { !/^\./ } readdir $dh), '', 'no temporary file left');
ok(log_lines(qr/download failed after \d+ bytes: connection closed after/), 'the failure is logged');
--- no_error_log
[error]



=== TEST 15: play_local_path keeps a complete download: the next play of that name is served from it (one HTTP request in all)
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application vod {
        play http://127.0.0.1:$TEST_NGINX_HTTP_PORT/files;
        play_temp_path vodtmp;
        play_local_path vodkeep;
    }
}
--- http_config
server {
    listen $TEST_NGINX_HTTP_PORT;
    log_not_found off;
    location /files/ { alias $TEST_NGINX_PREFIX/remote/; }
}
--- timeout: 60
--- run
File::Path::make_path("$TEST_NGINX_PREFIX/vodtmp", "$TEST_NGINX_PREFIX/vodkeep", { mode => 0777 });
chmod 0777, "$TEST_NGINX_PREFIX/vodtmp", "$TEST_NGINX_PREFIX/vodkeep";
my $dir = make_files('remote');
# Each round plays the two names side by side.
my @names = ('test', 'mp4:test');
for my $round (1, 2) {
    my @players;
    for my $name (@names) {
        my $r = raw_player($TEST_NGINX_RTMP_PORT, 'vod') or BAIL_OUT("raw player: $@");
        raw_play($r, $name);
        push @players, $r;
    }
    my @frames = wait_each(\@players, \&is_frame, 5);
    my @ends = $round == 1 ? wait_each(\@players, sub { status_of($_[0]) eq 'NetStream.Play.Stop' }, 20) : ();
    for my $i (0 .. $#names) {
        my $name = $names[$i];
        ok($frames[$i], "$name, play $round: frames");
        ok($ends[$i], "$name, play $round: to the end") if $round == 1;
        close $players[$i]{sock};
    }
}
is(Test::Nginx::Rtmp::slurp("$TEST_NGINX_PREFIX/vodkeep/test.flv"), Test::Nginx::Rtmp::slurp("$dir/test.flv"), 'test.flv kept, byte for byte');
is(Test::Nginx::Rtmp::slurp("$TEST_NGINX_PREFIX/vodkeep/test.mp4"), Test::Nginx::Rtmp::slurp("$dir/test.mp4"), 'test.mp4 kept, byte for byte');
my $access = Test::Nginx::Rtmp::slurp("$TEST_NGINX_PREFIX/logs/access.log");
is(scalar(() = $access =~ /GET \/files\/test\.flv/g), 1, 'one HTTP request for test.flv');
is(scalar(() = $access =~ /GET \/files\/test\.mp4/g), 1, 'one HTTP request for test.mp4');
ok(log_lines(qr{from "\Q$TEST_NGINX_PREFIX\E/vodkeep/test\.flv"}), 'the second play came from play_local_path');
opendir(my $dh, "$TEST_NGINX_PREFIX/vodtmp");
is(join(',', grep { !/^\./ } readdir $dh), '', 'no temporary file left');
--- no_error_log
[error]



=== TEST 16: an answer without Content-Length plays once the whole body is there (the readers need the length), every frame, and is never kept (its completeness cannot be checked)
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application vod {
        play http://127.0.0.1:$TEST_NGINX_RTMP_PORT2/v;
        play_temp_path vodtmp;
        play_local_path vodkeep;
    }
}
--- timeout: 60
--- run
File::Path::make_path("$TEST_NGINX_PREFIX/vodtmp", "$TEST_NGINX_PREFIX/vodkeep", { mode => 0777 });
chmod 0777, "$TEST_NGINX_PREFIX/vodtmp", "$TEST_NGINX_PREFIX/vodkeep";
my $dir = make_files('remote');
my $body = Test::Nginx::Rtmp::slurp("$dir/test.flv");
my $video = grep { $_->[0] == 9 && ord(substr($_->[2], 1, 1)) == 1 } flv_tags("$dir/test.flv");
my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $TEST_NGINX_RTMP_PORT2,
                                   Listen => 5, ReuseAddr => 1) or BAIL_OUT("listen: $!");
my $srv = in_background(sub {
    my $c = $listen->accept or return;
    my $req = '';
    sysread($c, $req, 4096, length $req) while $req !~ /\r\n\r\n/;
    print $c "HTTP/1.0 200 OK\r\nContent-Type: video/x-flv\r\n\r\n";
    # In two halves a second apart: nothing may play before the end.
    print $c substr($body, 0, length($body) / 2);
    $c->flush;
    sleep 1;
    print $c substr($body, length($body) / 2);
    close $c;
    return 1;
});
close $listen;
my $r = raw_player($TEST_NGINX_RTMP_PORT, 'vod') or BAIL_OUT("raw player: $@");
my $t0 = Time::HiRes::time();
raw_play($r, 'test');
my $first = wait_msg($r, \&is_frame, 10);
my $took = Time::HiRes::time() - $t0;
ok($first, 'frames arrive');
cmp_ok($took, '>=', 0.9, sprintf('only after the whole body (%.2f s)', $took));
my $end = wait_msg($r, sub { status_of($_[0]) eq 'NetStream.Play.Stop' }, 20);
ok($end, 'Play.Stop at the end');
my $frames = grep { is_frame($_) } @{ $r->{msgs} };
is($frames, $video, "every video frame ($frames of $video)");
ok(!(grep { level_of($_) eq 'error' } @{ $r->{msgs} }), 'no error status');
stop($srv->{pid});
opendir(my $dh, "$TEST_NGINX_PREFIX/vodkeep");
is(join(',', grep { !/^\./ } readdir $dh), '', 'nothing kept in play_local_path');
opendir($dh, "$TEST_NGINX_PREFIX/vodtmp");
is(join(',', grep { !/^\./ } readdir $dh), '', 'no temporary file left');
ok(log_lines(qr/answered 200, length unknown/), 'the log says the length was unknown');
--- no_error_log
[error]



=== TEST 17: subdirectories: FFmpeg plays FLV and MP4 below a play directory (rtmp://host/vod/sub/dir/test.flv is app "vod/sub" and name "dir/test", mp4:sub/dir/test.mp4 a name with slashes), rtmpdump and a raw player name sub/dir/test, symlinks are followed, on_play (GET) and access rules see the name; escapes are refused with a status and nothing else breaks; live play of a name with '/' waits like any unpublished name, publish refuses it, HTTP-FLV answers 404
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    notify_method get;
    application vod {
        play vod1 vod2;
        allow play 127.0.0.1;
        deny play all;
        on_play http://127.0.0.1:$TEST_NGINX_HTTP_PORT/on_play;
    }
    application live {
        live on;
    }
}
--- http_config
server {
    listen $TEST_NGINX_HTTP_PORT;
    location /on_play { return 200; }
    location /flv { flv_live on; }
}
--- timeout: 150
--- run
my $dir = make_files('vod2/sub/dir');
File::Path::make_path("$TEST_NGINX_PREFIX/vod1/sub/dir", "$TEST_NGINX_PREFIX/outside", "$TEST_NGINX_PREFIX/vod2/.hidden");
File::Copy::copy(media(), "$TEST_NGINX_PREFIX/outside/test.flv") or die "copy: $!";
File::Copy::copy(media(), "$TEST_NGINX_PREFIX/vod2/.hidden/test.flv") or die "copy: $!";
File::Copy::copy(media(), "$TEST_NGINX_PREFIX/secret.flv") or die "copy: $!";
symlink("$TEST_NGINX_PREFIX/outside", "$TEST_NGINX_PREFIX/vod2/linked") or die "symlink: $!";
symlink("../../../secret.flv", "$dir/link.flv") or die "symlink: $!";
my ($fv, $fa) = file_frames("$dir/test.flv");
my ($mv, $ma) = file_frames("$dir/test.mp4");
my $pid = worker_pid();
my $base = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/vod";
my %jobs;
for my $path ('sub/dir/test.flv', 'mp4:sub/dir/test.mp4', 'sub/dir/test.mp4', 'sub/dir/late.mp4', 'linked/test',
              'sub/dir/link.flv') {
    $jobs{$path} = in_background(sub { count_frames("$base/$path", 15) });
}
# A name with slashes, as Flash players and rtmpdump -y send it (read once FFmpeg is done).
my $r = raw_player($TEST_NGINX_RTMP_PORT, 'vod') or BAIL_OUT("raw player: $@");
raw_play($r, 'sub/dir/test');
for my $path (sort keys %jobs) {
    my ($v, $a, $err) = result_of($jobs{$path}, 40);
    my ($wv, $wa) = $path =~ /mp4/ ? ($mv, $ma) : ($fv, $fa);
    cmp_ok($v, '>=', $wv - 2, "$path: $v of the file's $wv video frames");
    cmp_ok($v, '<=', $wv, "$path: no video frame twice");
    cmp_ok($a, '>=', $wa - 3, "$path: $a of the file's $wa audio frames");
    unlike($err, qr/error|invalid/i, "$path: FFmpeg decoded without errors") or diag($err);
}
my @from = log_lines(qr/rtmp: play: "[^"]+" from /);
for (['dir/test', 'vod2/sub/dir/test.flv'], ['mp4:sub/dir/test.mp4', 'vod2/sub/dir/test.mp4'],
     ['mp4:dir/test.mp4', 'vod2/sub/dir/test.mp4'], ['mp4:dir/late.mp4', 'vod2/sub/dir/late.mp4'],
     ['test', 'vod2/linked/test.flv'], ['dir/link', 'vod2/sub/dir/link.flv']) {
    my ($name, $file) = @$_;
    ok((grep { m{play: "\Q$name\E" from "\Q$TEST_NGINX_PREFIX/$file\E"} } @from), "\"$name\" played from $file")
        or diag(join "\n", @from);
}
like(join("\n", log_lines(qr/connect app="vod"/)), qr{tcurl="rtmp://[^"]+/vod/sub"}, 'FFmpeg connected to app "vod/sub": the application is "vod"');

my $end = wait_msg($r, sub { status_of($_[0]) eq 'NetStream.Play.Stop' }, 20);
ok($end, 'raw player of "sub/dir/test": Play.Stop at the end');
my $video = grep { $_->[0] == 9 && ord(substr($_->[2], 1, 1)) == 1 } flv_tags("$dir/test.flv");
is(scalar(grep { is_frame($_) } @{ $r->{msgs} }), $video, "every video frame ($video)");
my $access = Test::Nginx::Rtmp::slurp("$TEST_NGINX_PREFIX/logs/access.log");
like($access, qr{GET /on_play\?[^ ]*name=sub%2Fdir%2Ftest[& ]}, 'on_play got the name with its slashes');
like($access, qr{GET /on_play\?[^ ]*name=linked%2Ftest[& ]},
     'FFmpeg\'s rtmp://host/vod/linked/test (application "vod/linked"): on_play is asked about the file it plays, linked/test');
# rtmpdump plays meanwhile the escapes below are tried (checked at the end).
my $out = "$TEST_NGINX_PREFIX/dump.flv";
my $dump = in_background(sub { Test::Nginx::Rtmp::run_cmd(
    ['rtmpdump', '-q', '-r', "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/vod", '-y', 'mp4:sub/dir/test.mp4', '--timeout', '5',
     '-o', $out], timeout => 30) });

# Escapes: refused with StreamNotFound and closed, no media; by the core (empty, "." or ".."
# segments, a leading '/', '\') or by the play module (segments starting with a dot, mp4:/...).
for my $case (['vod', 'sub/../../secret'], ['vod', 'sub/../../etc/passwd'], ['vod', '/etc/passwd'],
              ['vod', 'sub//dir/test'], ['vod', 'sub/dir/'], ['vod', '.hidden/test'], ['vod', 'sub/.dir/test'],
              ['vod', 'mp4:/etc/passwd'], ['vod', 'mp4:sub/../../x'], ['vod', "sub\\dir\\test"],
              ['vod/.hidden', 'test'], ['vod/..', 'secret'], ['vod/sub/..', '../secret']) {
    my ($app, $name) = @$case;
    my $r = raw_player($TEST_NGINX_RTMP_PORT, $app) or BAIL_OUT("raw player: $@");
    raw_play($r, $name);
    my $m = wait_msg($r, sub { level_of($_[0]) eq 'error' }, 5);
    is($m && status_of($m), 'NetStream.Play.StreamNotFound', "app \"$app\", \"$name\": StreamNotFound");
    ok(is_closed($r->{sock}, 5), "app \"$app\", \"$name\": closed");
    ok(!grep({ $_->{type} == 9 } @{ $r->{msgs} }), "app \"$app\", \"$name\": no media");
}
ok(log_lines(qr/play "\.hidden\/test": a segment of the name starts with a dot/), 'the hidden segment is logged as such');
ok(log_lines(qr/play: bad stream id or name/), 'the core refused the climbing names');
# A good play after the refusals (checked at the end).
my $good = in_background(sub { count_frames("$base/sub/dir/test.flv", 15) });

# Live: a play of a name with '/' is an unpublished name (HTTP-FLV: 404 at once, as for any name
# nobody publishes or waits for; RTMP: Play.Start and a wait); nobody can publish one.
for my $name ('nobody', 'sub/x') {
    my (undef, $hout) = Test::Nginx::Rtmp::run_cmd(['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '5',
        "http://127.0.0.1:$TEST_NGINX_HTTP_PORT/flv?app=live&stream=$name"], timeout => 10);
    is($hout, '404', "HTTP-FLV of \"$name\": 404 (nobody publishes it)");
}
my $lr = raw_player($TEST_NGINX_RTMP_PORT, 'live') or BAIL_OUT("raw player: $@");
raw_play($lr, 'sub/x');
ok(wait_msg($lr, sub { status_of($_[0]) eq 'NetStream.Play.Start' }, 5), 'live play of "sub/x": Play.Start, waiting like any unpublished name');
ok(wait_playing('sub/x'), 'live took it');
my $p = raw_player($TEST_NGINX_RTMP_PORT, 'live') or BAIL_OUT("raw player: $@");
raw_cmd($p, 'publish', amf_str('sub/x'), amf_str('live'));
my $bad = wait_msg($p, sub { level_of($_[0]) eq 'error' }, 5);
is($bad && status_of($bad), 'NetStream.Publish.BadName', 'publish "sub/x": BadName');
ok(is_closed($p->{sock}, 5), 'and that publisher is closed');
ok(!is_closed($lr->{sock}, 1), 'the waiting player is still there');

my ($code, undef, $err) = result_of($dump, 40);
my $frames = grep { $_->[0] == 9 && ord(substr($_->[2], 1, 1)) == 1 } flv_tags($out);
cmp_ok($frames, '>=', $mv - 2, "rtmpdump -y mp4:sub/dir/test.mp4: $frames of $mv video frames (exit $code)") or diag($err);
my ($v) = result_of($good, 40);
cmp_ok($v, '>=', $fv - 2, "a good play after the refusals ($v frames)");
is(worker_pid(), $pid, 'the same worker throughout');
--- no_error_log
[error]



=== TEST 18: the C module's play arguments vindex=N / aindex=N pick the tracks of an MP4 file: the second video (32x32) and the second audio track (MP3) to a raw player and to ffprobe; a track the file lacks leaves that kind out; an FLV file ignores them
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application vod {
        play vod;
    }
}
--- timeout: 90
--- run
my $dir = "$TEST_NGINX_PREFIX/vod";
File::Path::make_path($dir);
File::Copy::copy(Test::Nginx::Rtmp::repo_root() . '/crates/rtmp-proto/tests/data/vod/tracks.mp4', "$dir/tracks.mp4")
    or BAIL_OUT("copy: $!");
File::Copy::copy(Test::Nginx::Rtmp::repo_root() . '/crates/rtmp-proto/tests/data/vod/avc_aac.flv', "$dir/clip.flv")
    or BAIL_OUT("copy: $!");
# The file: 64x64 H.264, 32x32 H.264, AAC (sound format 10, 45 frames), MP3 (format 2, 79 frames).
my @cases = (['mp4:tracks.mp4', 64, 10, 45], ['mp4:tracks.mp4?vindex=1&aindex=1', 32, 2, 79],
             ['mp4:tracks.mp4?token=x&aindex=1', 64, 2, 79], ['mp4:tracks.mp4?aindex=5', 64, undef, 0],
             ['clip?vindex=1&aindex=1', 64, 10, 45]);
for (@cases) {
    my ($name, $width, $format, $frames) = @$_;
    my $r = raw_player($TEST_NGINX_RTMP_PORT, 'vod') or BAIL_OUT("raw player: $@");
    raw_play($r, $name);
    ok(wait_msg($r, sub { status_of($_[0]) eq 'NetStream.Play.Stop' }, 20), "\"$name\": played to the end");
    my ($meta) = grep { $_->{type} == 18 && $_->{data} =~ /onMetaData/ } @{ $r->{msgs} };
    is($meta && meta_num($meta, 'width'), $width, "\"$name\": onMetaData width $width");
    my @audio = grep { $_->{type} == 8 && length $_->{data} > 2 } @{ $r->{msgs} };
    my %formats = map { (ord($_->{data}) >> 4) => 1 } @audio;
    is(join(',', sort keys %formats), $format // '', "\"$name\": audio format " . ($format // 'none'));
    # The play starts at the first video keyframe: audio before it (MP3 encoder delay) is left out.
    cmp_ok(scalar(@audio), '>=', $frames - 3, "\"$name\": about the track's $frames audio frames");
    cmp_ok(scalar(@audio), '<=', $frames + 1, "\"$name\": no more than the track's $frames audio frames (and its header)");
    is(scalar(grep { is_frame($_) } @{ $r->{msgs} }), 20, "\"$name\": the 20 video frames");
}
my ($code, $out, $err) = Test::Nginx::Rtmp::run_cmd(['ffprobe', '-v', 'error', '-show_entries', 'stream=codec_name,width',
    '-of', 'csv=p=0', "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/vod/mp4:tracks.mp4?vindex=1&aindex=1"], timeout => 30);
is($code, 0, 'ffprobe read the stream') or diag($err);
like($out, qr/^h264,32$/m, 'ffprobe: the second video track (32x32)');
like($out, qr/^mp3/m, 'ffprobe: the second audio track (MP3)');
--- no_error_log
[error]
