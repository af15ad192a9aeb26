# HLS with fMP4 segments (hls_fragment_type fmp4), the block that measures wall-clock time
# (scripts/test runs this file alone): hls.js plays the module's live fMP4 playlist in headless
# Chromium for 15 s (skipped without chromium, like t/13-hls-browser.t). The playlists, boxes,
# keys, variants and republishes are checked in t/32-hls-fmp4-files.t; the readers are
# t/lib/Test/Nginx/HlsFmp4.pm and t/lib/Test/Nginx/Mp4.pm.
use lib 't/lib';
use Test::Nginx::Rtmp;
use Test::Nginx::HlsFmp4 qw(wait_segments);

run_tests();

__DATA__

=== TEST 1: hls.js in headless Chromium plays fMP4 HLS
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        live on;
        hls on;
        hls_path $TEST_NGINX_PREFIX/html/hls;
        hls_fragment 2s;
        hls_fragment_type fmp4;
    }
}
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_HTTP_PORT;
    location /hls/ {
        alias $TEST_NGINX_PREFIX/html/hls/;
        add_header Cache-Control no-cache;
        types { application/vnd.apple.mpegurl m3u8; video/mp4 m4s mp4; }
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
SKIP: {
skip("no @missing (run scripts/setup)", 7) if @missing;
my $dir = "$TEST_NGINX_PREFIX/html/hls";
my $shot = 'target/hls-fmp4-browser.png';
my $writer = publish("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/test", file => media('bench.flv'),
                     loop => 1, timeout => 120);
my $p = wait_segments("$dir/test.m3u8", 3, 30);
ok($p, 'the module made a playlist with 3 segments') or diag(publisher_log($writer));
my $r = browser_play_hls(
    "http://127.0.0.1:$TEST_NGINX_HTTP_PORT/web/hls.html?src=/hls/test.m3u8",
    seconds => 15, screenshot => $shot);
ok($r, 'the browser ran') or return 1;
note(explain({ map { $_ => $r->{$_} } grep { $_ ne 'samples' } keys %$r }));
ok($r->{started}, 'playback started');
cmp_ok($r->{advanced_s}, '>=', 10, 'playback advanced at least 10 s in 15 s');
is($r->{width}, 1280, 'video width');
is(scalar @{ $r->{fatal_errors} || [] }, 0, 'no fatal hls.js error') or diag(explain($r->{fatal_errors}));
ok(defined wait_publisher($writer, 0) ? 0 : 1, 'the publisher was still running');
}
