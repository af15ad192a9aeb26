# DASH, the blocks that measure wall-clock time (scripts/test runs this file alone): the live MPD
# by the DASH-IF rules over 10 s of updates, no segment announced available before the MPD that
# lists it is written (within 50 ms), every listed segment's boxes against S@t/S@d, FFmpeg reading
# the MPD over HTTP; and dash.js playing it in headless Chromium (playback rate, live latency).
# The other DASH blocks (segments and MPD with irregular GOPs, the window and the deletion of old
# files, layouts and names, audio-only, video-only and HEVC, the clock directives, configuration
# errors) are in t/31-dash-files.t; the readers are t/lib/Test/Nginx/Dash.pm.
use lib 't/lib';
use Test::Nginx::Rtmp;
use Test::Nginx::Dash qw(http_get iso_time parse_mpd sets_of watch_mpd mpd_rules across_versions
                         max_of min_of files_in ffmpeg_frames);
use File::Basename ();
use File::Path ();
use JSON::PP ();

run_tests();

__DATA__

=== TEST 1: live MPD by the DASH-IF rules over 10 s of updates; every listed segment's boxes agree with it; FFmpeg plays it over HTTP
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        live on;
        dash on;
        dash_path $TEST_NGINX_PREFIX/html/dash;
        dash_fragment 2s;
        dash_playlist_length 10s;
    }
}
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_HTTP_PORT;
    location /dash/ {
        alias $TEST_NGINX_PREFIX/html/dash/;
        add_header Cache-Control no-cache;
        types {
            application/dash+xml mpd;
            video/mp4 m4v;
            audio/mp4 m4a;
        }
    }
}
--- timeout: 120
--- run
my $pub = publish("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/test", loop => 1, timeout => 90);
my $dir = "$TEST_NGINX_PREFIX/html/dash";
ok(wait_until(sub { -s "$dir/test.mpd" }, 15, 0.1), 'the MPD appears in dash_path')
    or diag(publisher_log($pub));
my ($st, $head) = http_get('/dash/test.mpd');
is($st, 200, 'nginx serves the MPD');
like($head, qr{Content-Type: application/dash\+xml}i, 'as application/dash+xml');

my $w = watch_mpd('/dash/test.mpd', 10, step => 0.3);
my @v = @{ $w->{versions} };
cmp_ok(scalar @v, '>=', 5, 'the MPD changed at least 5 times in 10 s (2 s segments)');
my @rule_problems = map { my $i = $_; map { "version $i: $_" } mpd_rules($v[$i]{mpd}, tsbd => 10) } 0 .. $#v;
is_deeply(\@rule_problems, [], 'every version: DASH-IF live attributes, UTCTiming after the Periods, contiguous S')
    or diag(explain(\@rule_problems));
my $m = $v[-1]{mpd};
my $sets = sets_of($m);
is_deeply([sort keys %$sets], ['audio', 'video'], 'one video and one audio AdaptationSet');
is($sets->{video}{tmpl}{timescale}, 90000, 'video timescale 90000');
is($sets->{audio}{tmpl}{timescale}, 44100, 'audio timescale = sample rate');
like($sets->{video}{rep}{codecs}, qr/^avc1\.[0-9a-f]{6}$/, "video codecs $sets->{video}{rep}{codecs}");
is($sets->{video}{rep}{width} . 'x' . $sets->{video}{rep}{height}, '640x360', 'video size');
is($sets->{audio}{rep}{codecs}, 'mp4a.40.2', 'audio codecs');
is($sets->{audio}{rep}{audioSamplingRate}, 44100, 'audioSamplingRate');
ok($sets->{audio}{channels}, 'AudioChannelConfiguration');
is($m->{utc}[0]{schemeIdUri}, 'urn:mpeg:dash:utc:direct:2014', 'UTCTiming direct by default');
my $utc = iso_time($m->{utc}[0]{value});
ok(defined $utc && abs($utc - iso_time($m->{attr}{publishTime})) < 1, 'its value is the time the MPD was written');

my ($cross, $lags) = across_versions(\@v);
is_deeply($cross, [], 'across versions: AST and Periods constant, publishTime increasing, listed segments keep t/d')
    or diag(explain($cross));
note(sprintf('segment availability: publishTime of the first listing - announced availability: %.3f .. %.3f s (%d segments)',
             min_of(@$lags) // 0, max_of(@$lags) // 0, scalar @$lags));
cmp_ok(max_of(@$lags) // 9, '<', 0.05, 'no segment is announced available before the MPD listing it is written');

my %probs = %{ $w->{problems} };
for my $kind (qw(mpd_status mpd_parse xml tmp_listed init_status seg_status boxes tfdt duration sync)) {
    is_deeply($probs{$kind} // [], [], "no $kind problem") or diag(explain($probs{$kind}));
}
my @segs = grep { !$_->{missing} } values %{ $w->{segs} };
my $nv = grep { $_->{type} eq 'video' } @segs;
my $na = grep { $_->{type} eq 'audio' } @segs;
cmp_ok($nv, '>=', 5, "$nv video segments fetched and checked");
cmp_ok($na, '>=', 5, "$na audio segments fetched and checked");
# Segment lengths: video cut at the 2 s keyframes (at the media's loop seam FFmpeg's timestamps
# step by a few ms), audio in whole 1024-sample AAC frames, even at that seam, where FFmpeg sends
# two audio frames 1 ms apart.
my @vd = map { $_->{listed}{d} } grep { $_->{type} eq 'video' } @segs;
is_deeply([grep { abs($_ - 180000) > 1800 } @vd], [], 'video segments are 2 s (a keyframe every 2 s), +-20 ms');
my @ad = map { @{ $_->{durations} } } map { @{ $_->{frags} } } grep { $_->{type} eq 'audio' } @segs;
my @odd = grep { $_ != 1024 } @ad;
is(scalar @odd, 0, 'audio samples last 1024 ticks, the loop seams included (the packager keeps sample counts within 50 ms of the timestamps)')
    or diag("@odd");
note('audio sample durations other than 1024: ' . join(' ', @odd)) if @odd;

for my $type (qw(video audio)) {
    my ($init) = grep { defined } map { $w->{inits}{$_} } grep { /init\.m4(v|a)$/ && ($1 eq 'v') == ($type eq 'video') } keys %{ $w->{inits} };
    ok($init && grep({ $_ eq 'cmfc' } @{ $init->{brands} || [] }), "$type init: ftyp with cmfc")
        or diag(explain($init));
    is_deeply($init->{problems}, [], "$type init: ftyp then moov");
    ok($init->{mvex}, "$type init: moov/mvex");
    is($init->{entry}, $type eq 'video' ? 'avc1' : 'mp4a', "$type init: sample entry");
    is($init->{timescale}, $sets->{$type}{tmpl}{timescale}, "$type init: mdhd timescale = MPD timescale");
}

# Files on disk: only complete ones under their final names once the MPD lists them.
my @tmp = grep { /\.tmp$/ } files_in($dir);
cmp_ok(scalar @tmp, '<=', 3, 'at most the open segments are .tmp files');

my ($fv, $fa, $ferr) = ffmpeg_frames("http://127.0.0.1:$TEST_NGINX_HTTP_PORT/dash/test.mpd", 5);
note("ffmpeg: $fv video, $fa audio frames");
cmp_ok($fv, '>=', 100, 'ffmpeg decodes >= 100 video frames of 5 s from the MPD over HTTP') or diag($ferr);
cmp_ok($fa, '>=', 150, 'and >= 150 audio frames') or diag($ferr);
my @errs = grep { !/404|Not Found|Failed to open|failed to open|Error when loading first fragment|keepalive request failed/i } split /\n/, $ferr;
is_deeply(\@errs, [], 'no ffmpeg error but its look-ahead 404s');
ok(!defined wait_publisher($pub, 0), 'the publisher was still running') or diag(publisher_log($pub));

=== TEST 2: dash.js (pinned, headless Chromium) plays the live MPD: currentTime advances, no error; live latency printed
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        live on;
        dash on;
        dash_path $TEST_NGINX_PREFIX/html/dash;
        dash_fragment 2s;
        dash_playlist_length 10s;
    }
}
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_HTTP_PORT;
    location /dash/ {
        alias $TEST_NGINX_PREFIX/html/dash/;
        add_header Cache-Control no-cache;
        types {
            application/dash+xml mpd;
            video/mp4 m4v;
            audio/mp4 m4a;
        }
    }
    location /web/ {
        root html;
    }
}
--- timeout: 150
--- run
my @missing = grep { !-x $_ } qw(/usr/bin/chromium /usr/bin/chromedriver /usr/bin/python3);
push @missing, 'python3-selenium'
    if -x '/usr/bin/python3' && system('/usr/bin/python3 -c "import selenium" 2>/dev/null') != 0;
my $root = Test::Nginx::Rtmp::repo_root();
system("$root/scripts/setup") unless -s "$root/target/web/dash.all.min.js";
push @missing, 'target/web/dash.all.min.js' unless -s "$root/target/web/dash.all.min.js";
SKIP: {
skip("no @missing (run scripts/setup)", 8) if @missing;
# The page and the player, served by the block's nginx from html/web/.
my $web = "$TEST_NGINX_PREFIX/html/web";
File::Path::make_path($web);
for my $src ("$root/t/web/dash.html", "$root/target/web/dash.all.min.js") {
    open my $fh, '>', "$web/" . File::Basename::basename($src) or die "$web: $!";
    print $fh Test::Nginx::Rtmp::slurp($src);
    close $fh;
}
my $pub = publish("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/test", loop => 1, timeout => 120);
my $m = wait_until(sub {
    my $m = parse_mpd(Test::Nginx::Rtmp::slurp("$TEST_NGINX_PREFIX/html/dash/test.mpd")) or return 0;
    return @{ sets_of($m)->{video}{segs} || [] } >= 3 ? $m : 0;
}, 20, 0.2);
ok($m, 'the MPD lists 3 segments') or diag(publisher_log($pub));
my $shot = 'target/dash-browser.png';
unlink "$root/$shot";
my ($code, $out, $err) = Test::Nginx::Rtmp::run_cmd(['/usr/bin/python3', "$root/t/browser/dash_play.py",
    '--url', "http://127.0.0.1:$TEST_NGINX_HTTP_PORT/web/dash.html?src=/dash/test.mpd",
    '--seconds', 15, '--start-timeout', 25, '--screenshot', "$root/$shot"], timeout => 140);
my ($line) = grep { /^\{/ } reverse split /\n/, $out;
my $r = defined $line ? eval { JSON::PP::decode_json($line) } : undef;
ok($r && !$code, 'the browser ran') or do { diag("dash_play.py exit $code\n$out$err"); last };
note(explain($r));
ok($r->{started}, "dash.js $r->{version} started playback");
cmp_ok($r->{advanced_s}, '>=', 10, "currentTime advanced $r->{advanced_s} s in 15 s");
is("$r->{width}x$r->{height}", '640x360', 'video size');
is_deeply($r->{errors}, [], 'no dash.js ERROR event, no media element error');
ok(defined $r->{latency_s}, 'dash.js reports a live latency');
note("dash.js live latency: $r->{latency_s} s (second half of the watch: $r->{latency_min_s} .. $r->{latency_max_s} s)");
cmp_ok($r->{latency_s} // 99, '<', 10, 'live latency below timeShiftBufferDepth (10 s)');
ok(!defined wait_publisher($pub, 0), 'the publisher was still running') or diag(publisher_log($pub));
}
