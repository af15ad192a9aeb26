# VOD blocks whose checks race the wall clock, so scripts/test runs this file alone: TEST 1, files
# paced at real time plus a 1 s lead (8-11.5 s for 10 s; with the C module's statuses, onMetaData and
# the end around those plays); TEST 2, a remote file's first frame within 1.5 s of the start of its
# rate-limited download (about 5 s); TEST 3, three FFmpeg players that must join such a download
# before it ends, then share it and get every frame. Everything else about `play` is in
# t/30-vod-files.t, which runs beside other suites. Helpers: t/lib/Test/Nginx/Vod.pm.
use lib 't/lib';
use Test::Nginx::Rtmp;
use Test::Nginx::Vod qw(make_files file_frames raw_player raw_play wait_msg wait_each status_of is_frame meta_num);
use File::Path ();

run_tests();

__DATA__

=== TEST 1: the C module's messages in order, onMetaData with the duration, pacing at real time plus a lead, the end (StreamEOF, onPlayStatus Play.Complete, Play.Stop)
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application vod {
        play vod;
    }
}
--- run
make_files('vod');
# The two files side by side, each play timed from its own play command.
my @names = ('test', 'mp4:test');
my (@players, @t0);
for my $name (@names) {
    my $r = raw_player($TEST_NGINX_RTMP_PORT, 'vod') or BAIL_OUT("raw player: $@");
    push @players, $r;
    push @t0, Time::HiRes::time();
    raw_play($r, $name);
}
my @firsts = wait_each(\@players, sub { $_[0]{type} == 9 }, 5);
my @ends = wait_each(\@players, sub { status_of($_[0]) eq 'NetStream.Play.Stop' }, 20);
for my $i (0 .. $#names) {
    my ($name, $r, $first, $end) = ($names[$i], $players[$i], $firsts[$i], $ends[$i]);
    ok($first, "$name: video arrives");
    my @codes = grep { /^NetStream/ } map { status_of($_) } @{ $r->{msgs} };
    is(join(' ', @codes[0 .. 1]), 'NetStream.Play.Reset NetStream.Play.Start', "$name: Play.Reset then Play.Start");
    my ($uc) = grep { $_->{type} == 4 } @{ $r->{msgs} };
    ok($uc && unpack('n', $uc->{data}) == 0, "$name: StreamBegin first");
    ok((grep { $_->{type} == 4 && unpack('n', $_->{data}) == 4 } @{ $r->{msgs} }), "$name: StreamIsRecorded");
    ok((grep { $_->{type} == 18 && $_->{data} =~ /RtmpSampleAccess/ } @{ $r->{msgs} }), "$name: |RtmpSampleAccess");
    my ($meta) = grep { $_->{type} == 18 && $_->{data} =~ /onMetaData/ } @{ $r->{msgs} };
    ok($meta, "$name: onMetaData before the media");
    my $dur = $meta ? meta_num($meta, 'duration') : undef;
    ok(defined $dur && abs($dur - 10.08) < 0.2, "$name: onMetaData duration " . ($dur // 'none') . ' s');
    ok(!is_frame($first), "$name: the first video message is the sequence header");
    # When Play.Stop was read (both players are read as their bytes come).
    my $took = ($end ? $end->{at} : Time::HiRes::time()) - $t0[$i];
    ok($end, "$name: Play.Stop at the end");
    cmp_ok($took, '>=', 8, "$name: paced at real time (took ${\ sprintf '%.1f', $took} s for 10 s with a 1 s lead)");
    cmp_ok($took, '<=', 11.5, "$name: not slower than real time");
    my @tail = map { status_of($_) || ($_->{type} == 4 ? 'uc' . unpack('n', $_->{data}) : ()) } @{ $r->{msgs} }[-3 .. -1];
    is(join(' ', @tail), 'uc1 NetStream.Play.Complete NetStream.Play.Stop', "$name: StreamEOF, onPlayStatus Play.Complete, Play.Stop");
    my @media = grep { is_frame($_) } @{ $r->{msgs} };
    my @ts = map { $_->{ts} } @media;
    ok(!grep({ $ts[$_] < $ts[$_ - 1] } 1 .. $#ts), "$name: video timestamps never go back");
    ok(!is_closed($r->{sock}, 1), "$name: the connection stays open after the end");
}
--- no_error_log
[error]



=== TEST 2: a remote file plays while it downloads: the first frames come long before the (rate-limited) download ends
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
my $r = raw_player($TEST_NGINX_RTMP_PORT, 'vod') or BAIL_OUT("raw player: $@");
my $t0 = Time::HiRes::time();
raw_play($r, 'test');
my $first = wait_msg($r, \&is_frame, 5);
my $took = Time::HiRes::time() - $t0;
ok($first, 'a frame arrives');
cmp_ok($took, '<', 1.5, sprintf('the first frame after %.2f s (the %d-byte download takes about %.1f s)', $took, $size, $size / 32768));
unlike(Test::Nginx::Rtmp::slurp("$TEST_NGINX_PREFIX/logs/access.log"), qr/test\.flv/, 'the download had not finished then (nothing in the access log yet)');
# The rest of such a play (every frame, the whole download) needs no clock: t/30-vod-files.t.
close $r->{sock};
--- no_error_log
[error]



=== TEST 3: players of one remote file share its download: a raw player starts it (sub/test, from a subdirectory of the entry), three FFmpeg players join while it runs (rate-limited), the first one leaves, the three decode every frame; the origin served the file once
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
--- timeout: 90
--- run
File::Path::make_path("$TEST_NGINX_PREFIX/vodtmp");
chmod 0777, "$TEST_NGINX_PREFIX/vodtmp";
my $dir = make_files('remote/sub');
my $size = -s "$dir/test.flv";
my ($fv, $fa) = file_frames("$dir/test.flv");
my $r = raw_player($TEST_NGINX_RTMP_PORT, 'vod') or BAIL_OUT("raw player: $@");
raw_play($r, 'sub/test');
ok(wait_log(qr{rtmp: play: http://127\.0\.0\.1:\d+/files/sub/test\.flv answered 200, $size bytes}, 1, 10),
   'the first player started the download of sub/test.flv');
ok(wait_msg($r, \&is_frame, 5), 'and plays while it downloads');
my $base = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/vod";
# rtmp://host/vod/sub/test.flv is app "vod/sub", name "test": the same file.
my @jobs = map { in_background(sub { count_frames("$base/sub/test.flv", 15) }) } 1 .. 3;
ok(wait_log(qr/rtmp: play: "test" joins the download of /, 3, 15), 'the three FFmpeg players joined it');
my @joins = log_lines(qr/joins the download of /);
for my $j (@joins) {
    my ($got, $total) = $j =~ /\((\d+) of (\d+) bytes so far\)/ ? ($1, $2) : (-1, -1);
    ok($got >= 0 && $got < $total, "joined while it ran ($got of $total bytes)") or diag($j);
}
unlike(Test::Nginx::Rtmp::slurp("$TEST_NGINX_PREFIX/logs/access.log"), qr/test\.flv/,
       'the download had not finished when they joined (nothing in the access log yet)');
close $r->{sock};
ok(wait_log(qr/rtmp: closing: client closed the connection/, 1, 5), 'the player that started it left');
for my $i (0 .. 2) {
    my ($v, $a, $err) = result_of($jobs[$i], 40);
    cmp_ok($v, '>=', $fv - 2, "player $i: $v of the file's $fv video frames");
    cmp_ok($v, '<=', $fv, "player $i: no video frame twice");
    cmp_ok($a, '>=', $fa - 3, "player $i: $a of the file's $fa audio frames");
    unlike($err, qr/error|invalid/i, "player $i: FFmpeg decoded without errors") or diag($err);
}
ok(wait_until(sub { Test::Nginx::Rtmp::slurp("$TEST_NGINX_PREFIX/logs/access.log") =~ /test\.flv/ }, 10), 'the download ended');
my $access = Test::Nginx::Rtmp::slurp("$TEST_NGINX_PREFIX/logs/access.log");
is(scalar(() = $access =~ /GET \/files\/sub\/test\.flv/g), 1, 'the origin served sub/test.flv once');
like($access, qr{"GET /files/sub/test\.flv\?addr=127\.0\.0\.1 HTTP/1\.0" 200 $size }, 'whole, to the player that started it');
is(scalar(log_lines(qr/rtmp: play: http:\S+: downloaded $size bytes/)), 1, 'one download logged');
ok(wait_until(sub { opendir(my $dh, "$TEST_NGINX_PREFIX/vodtmp"); !grep { !/^\./ } readdir $dh }, 10), 'no temporary file left');
--- no_error_log
[error]
