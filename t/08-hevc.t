# HEVC through the live module: Enhanced RTMP (FourCC hvc1) and the legacy codec id 12, published
# and played by our client; a player that did not announce Enhanced RTMP is not sent hvc1 video.
use lib 't/lib';
use Test::Nginx::Rtmp;

# Video tag payloads of an FLV file, in order.
sub video_payloads { map { $_->[2] } grep { $_->[0] == 9 } flv_tags($_[0]) }

# Checks that what a player saved is the publisher's video, byte for byte: a sequence header
# first, then frames that each equal the source's frame at the same place in the (looped) file.
sub same_video {
    my ($got_file, $src_file, $min) = @_;
    my @src = video_payloads($src_file);
    my @got = video_payloads($got_file);
    my $seq = $src[0];
    my @frames = @src[1 .. $#src - 1];    # without the sequence start and end
    my %index;
    $index{ $frames[$_] } //= $_ for 0 .. $#frames;
    is($got[0], $seq, 'the first video message is the sequence header, intact');
    # A looping publisher sends the sequence start and end again at each turn.
    my $end = $src[-1];
    my @rest = grep { $_ ne $seq && $_ ne $end } @got[1 .. $#got];
    cmp_ok(scalar @rest, '>=', $min, "at least $min frames");
    my $i = $index{ $rest[0] // '' };
    ok(defined $i, 'the first frame is one of the source frames');
    ok(defined $i && (ord($frames[$i]) >> 4 & 7) == 1, 'the first frame is a keyframe');
    my $bad = 0;
    for my $f (@rest) {
        $bad++ if !defined $i || $f ne $frames[$i];
        $i = defined $i ? ($i + 1) % @frames : undef;
    }
    is($bad, 0, 'every frame equals the source frame in order');
}

run_tests();

__DATA__

=== TEST 1: Enhanced RTMP hvc1 reaches a player that announced hvc1, byte for byte
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; }
}
--- run
my $url = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/hevc";
my $src = hevc_flv('enhanced');
my $pub = rtmp_publish($url, $src, loop => 1, args => ['--fourcc', 'hvc1']);
ok(wait_published('hevc'), 'rtmp publish publishes') or diag(publisher_log($pub));
my $out = Test::Nginx::Rtmp::tmp_dir() . '/hvc1.flv';
my $rc = system("timeout 20 @{[rtmp_cli()]} --fourcc hvc1 play $url --duration 4 --out $out >/dev/null 2>&1");
is($rc, 0, 'rtmp play --fourcc hvc1 exits 0');
main::same_video($out, $src, 60);
my $probe = `timeout 20 @{[rtmp_cli()]} --fourcc hvc1 probe $url --json 2>/dev/null`;
like($probe, qr/"codec":\s*"HEVC"/, 'probe: video is HEVC');
like($probe, qr/"width":\s*640(\.0)?\b/, 'onMetaData built from the HEVC SPS: width');
like($probe, qr/"height":\s*360(\.0)?\b/, 'onMetaData built from the HEVC SPS: height (cropped)');
is(wait_publisher($pub, 0), undef, 'the publisher is still publishing') or diag(publisher_log($pub));



=== TEST 2: a player without Enhanced RTMP gets no hvc1 video; other players are unaffected
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; }
}
--- run
my $url = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/hevc";
my $src = hevc_flv('enhanced');
my $pub = rtmp_publish($url, $src, loop => 1, args => ['--fourcc', 'hvc1']);
ok(wait_published('hevc'), 'rtmp publish publishes') or diag(publisher_log($pub));
my $dir = Test::Nginx::Rtmp::tmp_dir();
my $legacy = in_background(sub {
    system("timeout 20 @{[rtmp_cli()]} play $url --duration 3 --out $dir/legacy.flv >/dev/null 2>&1");
    return 1;
});
system("timeout 20 @{[rtmp_cli()]} --fourcc hvc1,av01 play $url --duration 3 --out $dir/enhanced.flv >/dev/null 2>&1");
result_of($legacy, 20);
is(scalar(main::video_payloads("$dir/legacy.flv")), 0, 'the legacy player got no video');
cmp_ok(scalar(main::video_payloads("$dir/enhanced.flv")), '>=', 40, 'the enhanced player did');
--- error_log
did not announce Enhanced RTMP support for "hvc1"



=== TEST 3: legacy HEVC (codec id 12) passes to every player, byte for byte
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live { live on; }
}
--- run
my $url = "rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/hevc12";
my $src = hevc_flv('legacy');
my $pub = rtmp_publish($url, $src, loop => 1);
ok(wait_published('hevc12'), 'rtmp publish publishes') or diag(publisher_log($pub));
my $out = Test::Nginx::Rtmp::tmp_dir() . '/legacy12.flv';
my $rc = system("timeout 20 @{[rtmp_cli()]} play $url --duration 4 --out $out >/dev/null 2>&1");
is($rc, 0, 'rtmp play exits 0');
main::same_video($out, $src, 60);
