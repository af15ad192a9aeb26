# DASH: the module writes a dynamic MPD, CMAF init segments and media segments into dash_path while
# FFmpeg (or our client) publishes; nginx's own HTTP side serves them. Checked from the outside:
# the MPD's DASH-IF live rules across updates, every listed segment's boxes (tfdt = S@t, trun
# durations = S@d), the window and the deletion of old files, FFmpeg reading the MPD over HTTP,
# the layouts and names, the clock directives, and dash.js playing it in headless Chromium.
use lib 't/lib';
use Test::Nginx::Rtmp;
use Time::HiRes ();
use Time::Local ();
use File::Basename ();
use File::Path ();
use JSON::PP ();

# ---------------------------------------------------------------------------------------------
# HTTP

# GET (or HEAD) $path from the block's http server: (status, headers, body); status 0 when the
# server did not answer within 10 s.
sub http_get {
    my ($path, $method) = @_;
    my $h = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$ENV{TEST_NGINX_HTTP_PORT}", Timeout => 5)
        or return (0, '', '');
    print $h (($method // 'GET') . " $path HTTP/1.0\r\nHost: localhost\r\n\r\n");
    my $sel = IO::Select->new($h);
    my $resp = '';
    my $deadline = Time::HiRes::time() + 10;
    while (Time::HiRes::time() < $deadline) {
        next unless $sel->can_read(0.5);
        my $n = sysread($h, $resp, 65536, length $resp);
        last unless $n;
    }
    close $h;
    my ($head, $body) = split /\r\n\r\n/, $resp, 2;
    my ($status) = ($head // '') =~ m{^HTTP/1\.\d (\d+)};
    return ($status // 0, $head // '', $body // '');
}

# ---------------------------------------------------------------------------------------------
# MPD

# Attributes of an XML start tag's attribute text.
sub attrs {
    my ($s) = @_;
    my %a;
    $a{$1} = $2 while ($s // '') =~ /([\w:]+)="([^"]*)"/g;
    return \%a;
}

# xs:dateTime (UTC, "Z") to epoch seconds (fractional).
sub iso_time {
    my ($s) = @_;
    return undef unless ($s // '') =~ /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d+)?Z$/;
    return Time::Local::timegm($6, $5, $4, $3, $2 - 1, $1) + ($7 // 0);
}

# xs:duration (PTnHnMn.nS) to seconds.
sub xs_duration {
    my ($s) = @_;
    return undef unless ($s // '') =~ /^PT(?:(\d+)H)?(?:(\d+)M)?(?:([\d.]+)S)?$/;
    return ($1 // 0) * 3600 + ($2 // 0) * 60 + ($3 // 0);
}

# The MPD's parts: { attr, periods => [{ attr, sets => [{ attr, type, tmpl, rep, segs => [{n, t, d}],
# channels }] }], utc => [attrs], utc_after_periods, text }, or undef if there is no MPD element.
sub parse_mpd {
    my ($x) = @_;
    my ($ma) = $x =~ /<MPD\b([^>]*)>/ or return undef;
    my %m = (text => $x, attr => attrs($ma), periods => []);
    for my $p ($x =~ m{(<Period\b.*?</Period>)}sg) {
        my %per = (attr => attrs(($p =~ /<Period\b([^>]*)>/)[0]), sets => []);
        for my $as ($p =~ m{(<AdaptationSet\b.*?</AdaptationSet>)}sg) {
            my %set = (attr => attrs(($as =~ /<AdaptationSet\b([^>]*)>/)[0]));
            $set{type} = $set{attr}{contentType} // '';
            $set{tmpl} = attrs(($as =~ /<SegmentTemplate\b([^>]*?)\/?>/)[0]);
            $set{rep} = attrs(($as =~ /<Representation\b([^>]*?)\/?>/)[0]);
            $set{reps} = () = $as =~ /<Representation\b/g;
            ($set{channels}) = $as =~ /<AudioChannelConfiguration\b[^>]*value="(\d+)"/;
            my ($n, $t, @segs) = ($set{tmpl}{startNumber} // 1);
            for my $s ($as =~ /<S\b([^>]*?)\/>/g) {
                my $a = attrs($s);
                $t = $a->{t} if defined $a->{t};
                my $r = $a->{r} // 0;
                $set{bad_r} = 1 if $r < 0;
                for (0 .. ($r < 0 ? 0 : $r)) {
                    push @segs, { n => $n++, t => $t, d => $a->{d} };
                    $t += $a->{d};
                }
            }
            $set{segs} = \@segs;
            push @{ $per{sets} }, \%set;
        }
        push @{ $m{periods} }, \%per;
    }
    $m{utc} = [ map { attrs($_) } $x =~ /<UTCTiming\b([^>]*?)\/?>/g ];
    my $last_period = rindex($x, '</Period>');
    my $first_utc = index($x, '<UTCTiming');
    $m{utc_after_periods} = $first_utc > $last_period && $last_period >= 0 ? 1 : 0;
    return \%m;
}

# The AdaptationSets of the MPD's last Period, by contentType.
sub sets_of {
    my ($m) = @_;
    return {} unless $m && @{ $m->{periods} };
    return { map { $_->{type} => $_ } @{ $m->{periods}[-1]{sets} } };
}

# A segment's URL, relative to the MPD at $mpd_url.
sub seg_url {
    my ($mpd_url, $tmpl, $n) = @_;
    (my $base = $mpd_url) =~ s{[^/]*$}{};
    (my $u = $tmpl) =~ s/\$Number\$/$n/g;
    return $base . $u;
}

sub xmllint_ok {
    my ($text) = @_;
    my $f = Test::Nginx::Rtmp::tmp_dir() . "/mpd-$$.xml";
    open my $fh, '>', $f or return "write $f: $!";
    print $fh $text;
    close $fh;
    my ($code, undef, $err) = Test::Nginx::Rtmp::run_cmd(['xmllint', '--noout', $f], timeout => 10);
    unlink $f;
    return $code ? "xmllint: $err" : '';
}

# ---------------------------------------------------------------------------------------------
# ISO BMFF

# The boxes in $d between $off and $end: [{type, off, size, body}]; a box running past $end
# ends the list (and sets {bad} on the last entry).
sub boxes {
    my ($d, $off, $end) = @_;
    my @b;
    while ($off + 8 <= $end) {
        my ($size, $type) = unpack('N a4', substr($d, $off, 8));
        my $hdr = 8;
        if ($size == 1) { $size = unpack('Q>', substr($d, $off + 8, 8)); $hdr = 16 }
        elsif ($size == 0) { $size = $end - $off }
        if ($size < $hdr || $off + $size > $end) { push @b, { type => $type, bad => 1 }; last }
        push @b, { type => $type, off => $off, size => $size, body => $off + $hdr };
        $off += $size;
    }
    return @b;
}

# The children of $box of a type ($skip: bytes of the box's own fields before its children).
sub kids {
    my ($d, $box, $type, $skip) = @_;
    return grep { $_->{type} eq $type } boxes($d, $box->{body} + ($skip // 0), $box->{off} + $box->{size});
}

sub path_box {
    my ($d, $box, @path) = @_;
    for my $p (@path) {
        my ($type, $skip) = ref $p ? @$p : ($p, 0);
        ($box) = kids($d, $box, $type, $skip) or return undef;
    }
    return $box;
}

# An init segment: { brands => [...], entry => sample entry type, trex_duration, timescale,
# mvex => 1/0, problems => [...] }.
sub parse_init {
    my ($d) = @_;
    my %r = (problems => []);
    my @top = boxes($d, 0, length $d);
    push @{ $r{problems} }, 'top-level boxes ' . join(',', map { $_->{type} } @top)
        unless "@{[map { $_->{type} } @top]}" eq 'ftyp moov' && !grep { $_->{bad} } @top;
    my ($ftyp) = grep { $_->{type} eq 'ftyp' } @top;
    my ($moov) = grep { $_->{type} eq 'moov' } @top;
    return \%r unless $ftyp && $moov;
    my $fb = substr($d, $ftyp->{body}, $ftyp->{size} - 8);
    $r{brands} = [ substr($fb, 0, 4), map { substr($fb, $_, 4) } grep { $_ % 4 == 0 } 8 .. length($fb) - 4 ];
    my $mvex = path_box($d, { body => $moov->{body} - 8 + 8, off => $moov->{off}, size => $moov->{size} }, 'mvex');
    $mvex //= path_box($d, $moov, 'mvex');
    $r{mvex} = $mvex ? 1 : 0;
    if ($mvex and my ($trex) = kids($d, $mvex, 'trex')) {
        my @f = unpack('N6', substr($d, $trex->{body}, 24));
        $r{trex_duration} = $f[3];
        $r{trex_flags} = $f[5];
    }
    my $mdhd = path_box($d, $moov, 'trak', 'mdia', 'mdhd');
    if ($mdhd) {
        my $v = unpack('C', substr($d, $mdhd->{body}, 1));
        $r{timescale} = unpack('N', substr($d, $mdhd->{body} + ($v == 1 ? 20 : 12), 4));
    }
    my $stsd = path_box($d, $moov, 'trak', 'mdia', 'minf', 'stbl', 'stsd');
    if ($stsd) {
        my ($entry) = boxes($d, $stsd->{body} + 8, $stsd->{off} + $stsd->{size});
        $r{entry} = $entry->{type} if $entry;
    }
    return \%r;
}

# A media segment: { frags => [{ seq, tfdt, tfdt_version, durations => [...], sync_first,
# nonsync_later }], problems => [...] }. $init (parse_init) gives the trex defaults.
sub parse_segment {
    my ($d, $init) = @_;
    my %r = (frags => [], problems => []);
    my @top = boxes($d, 0, length $d);
    push @{ $r{problems} }, 'a box runs past the end of the file' if grep { $_->{bad} } @top;
    my $mdat_expected;
    for my $i (0 .. $#top) {
        my $b = $top[$i];
        next if $b->{bad};
        if ($b->{type} eq 'moof') {
            my %f;
            my ($mfhd) = kids($d, $b, 'mfhd');
            $f{seq} = unpack('N', substr($d, $mfhd->{body} + 4, 4)) if $mfhd;
            my @trafs = kids($d, $b, 'traf');
            push @{ $r{problems} }, scalar(@trafs) . ' traf in a moof' unless @trafs == 1;
            my $traf = $trafs[0] or next;
            my ($tfhd) = kids($d, $traf, 'tfhd');
            my ($tfdt) = kids($d, $traf, 'tfdt');
            my @truns = kids($d, $traf, 'trun');
            unless ($tfhd && $tfdt && @truns == 1) {
                push @{ $r{problems} }, 'traf without tfhd, tfdt or one trun';
                next;
            }
            my $tf = unpack('N', substr($d, $tfhd->{body}, 4)) & 0xffffff;
            push @{ $r{problems} }, 'tfhd has base-data-offset' if $tf & 0x1;
            push @{ $r{problems} }, 'tfhd without default-base-is-moof' unless $tf & 0x20000;
            my $at = $tfhd->{body} + 8;
            $at += 8 if $tf & 0x1;
            $at += 4 if $tf & 0x2;
            my ($def_dur, $def_size, $def_flags) = ($init->{trex_duration}, undef, $init->{trex_flags});
            if ($tf & 0x8) { $def_dur = unpack('N', substr($d, $at, 4)); $at += 4 }
            if ($tf & 0x10) { $def_size = unpack('N', substr($d, $at, 4)); $at += 4 }
            if ($tf & 0x20) { $def_flags = unpack('N', substr($d, $at, 4)); $at += 4 }
            $f{tfdt_version} = unpack('C', substr($d, $tfdt->{body}, 1));
            $f{tfdt} = $f{tfdt_version} == 1 ? unpack('Q>', substr($d, $tfdt->{body} + 4, 8))
                                             : unpack('N', substr($d, $tfdt->{body} + 4, 4));
            my $trun = $truns[0];
            my $vf = unpack('N', substr($d, $trun->{body}, 4));
            my $fl = $vf & 0xffffff;
            my $count = unpack('N', substr($d, $trun->{body} + 4, 4));
            $at = $trun->{body} + 8;
            my ($data_offset, $first_flags);
            if ($fl & 0x1) { $data_offset = unpack('l>', substr($d, $at, 4)); $at += 4 }
            if ($fl & 0x4) { $first_flags = unpack('N', substr($d, $at, 4)); $at += 4 }
            push @{ $r{problems} }, 'trun without data-offset' unless defined $data_offset;
            my ($sizes, @durs, @flags) = (0);
            for my $k (0 .. $count - 1) {
                my ($dur, $size, $flags) = ($def_dur, $def_size, $def_flags);
                if ($fl & 0x100) { $dur = unpack('N', substr($d, $at, 4)); $at += 4 }
                if ($fl & 0x200) { $size = unpack('N', substr($d, $at, 4)); $at += 4 }
                if ($fl & 0x400) { $flags = unpack('N', substr($d, $at, 4)); $at += 4 }
                $at += 4 if $fl & 0x800;
                $flags = $first_flags if $k == 0 && defined $first_flags;
                push @durs, $dur // 0;
                push @flags, $flags // 0;
                $sizes += $size // 0;
            }
            $f{durations} = \@durs;
            $f{sync_first} = @flags && !($flags[0] & 0x10000) ? 1 : 0;
            # The samples sit in the mdat right after this moof.
            my $mdat = $top[$i + 1];
            if (!$mdat || $mdat->{type} ne 'mdat') {
                push @{ $r{problems} }, 'moof not followed by mdat';
            } else {
                push @{ $r{problems} }, "trun data-offset $data_offset does not point at the mdat payload"
                    if defined $data_offset && $b->{off} + $data_offset != $mdat->{body};
                push @{ $r{problems} }, "sample sizes $sizes != mdat payload " . ($mdat->{size} - ($mdat->{body} - $mdat->{off}))
                    if $sizes != $mdat->{size} - ($mdat->{body} - $mdat->{off});
            }
            push @{ $r{frags} }, \%f;
        }
    }
    push @{ $r{problems} }, 'no moof' unless @{ $r{frags} };
    my $prev;
    for my $f (@{ $r{frags} }) {
        push @{ $r{problems} }, "tfdt version $f->{tfdt_version}" unless $f->{tfdt_version} == 1;
        push @{ $r{problems} }, 'a zero sample duration' if grep { !$_ } @{ $f->{durations} };
        if ($prev) {
            my $sum = 0;
            $sum += $_ for @{ $prev->{durations} };
            push @{ $r{problems} }, "fragment tfdt $f->{tfdt} != previous $prev->{tfdt} + $sum"
                unless $f->{tfdt} == $prev->{tfdt} + $sum;
            push @{ $r{problems} }, 'mfhd sequence not increasing' unless $f->{seq} > $prev->{seq};
        }
        $prev = $f;
    }
    $r{tfdt} = @{ $r{frags} } ? $r{frags}[0]{tfdt} : undef;
    $r{duration} = 0;
    $r{duration} += $_ for map { @{ $_->{durations} } } @{ $r{frags} };
    $r{sync_first} = @{ $r{frags} } ? $r{frags}[0]{sync_first} : 0;
    return \%r;
}

# ---------------------------------------------------------------------------------------------
# Watching a live MPD

# Fetches the MPD at $url every $step s for $secs s; every version whose text changed is kept
# with its fetch time, and every segment it lists is fetched once (right after the MPD) and
# checked. Returns { versions => [{ mpd, at }], problems => { kind => [...] }, segs => {url => parsed},
# fetches }.
sub watch_mpd {
    my ($url, $secs, %opt) = @_;
    my (%seen, @versions, %problems, %inits);
    my $fetches = 0;
    my $end = Time::HiRes::time() + $secs;
    my $last_text = '';
    while (Time::HiRes::time() < $end) {
        my $at = Time::HiRes::time();
        my ($st, $head, $body) = http_get($url);
        $fetches++;
        if ($st != 200) {
            push @{ $problems{mpd_status} }, "MPD answered $st";
            Time::HiRes::sleep($opt{step} // 0.5);
            next;
        }
        if ($body ne $last_text) {
            $last_text = $body;
            my $m = parse_mpd($body);
            unless ($m) { push @{ $problems{mpd_parse} }, "no MPD element in: $body"; next }
            push @versions, { mpd => $m, at => $at };
            push @{ $problems{tmp_listed} }, 'a .tmp name in the MPD' if $body =~ /\.tmp\b/;
            if (my $e = xmllint_ok($body)) { push @{ $problems{xml} }, $e }
            for my $p (@{ $m->{periods} }) {
                for my $set (@{ $p->{sets} }) {
                    my $init_url = seg_url($url, $set->{tmpl}{initialization} // '', '');
                    unless ($inits{$init_url}) {
                        my ($ist, undef, $ibody) = http_get($init_url);
                        push @{ $problems{init_status} }, "$init_url: $ist" if $ist != 200;
                        $inits{$init_url} = parse_init($ibody);
                    }
                    my $init = $inits{$init_url};
                    for my $s (@{ $set->{segs} }) {
                        my $u = seg_url($url, $set->{tmpl}{media} // '', $s->{n});
                        next if $seen{$u};
                        my ($sst, undef, $sbody) = http_get($u);
                        if ($sst != 200) {
                            push @{ $problems{seg_status} }, "$u listed but answers $sst";
                            $seen{$u} = { missing => 1 };
                            next;
                        }
                        my $seg = parse_segment($sbody, $init);
                        $seg->{type} = $set->{type};
                        $seg->{listed} = $s;
                        $seen{$u} = $seg;
                        push @{ $problems{boxes} }, map { "$u: $_" } @{ $seg->{problems} };
                        push @{ $problems{tfdt} }, "$u: tfdt $seg->{tfdt} != S\@t $s->{t}"
                            unless defined $seg->{tfdt} && $seg->{tfdt} == $s->{t};
                        push @{ $problems{duration} }, "$u: trun durations $seg->{duration} != S\@d $s->{d}"
                            unless $seg->{duration} == $s->{d};
                        push @{ $problems{sync} }, "$u: first sample not sync"
                            if $set->{type} eq 'video' && !$seg->{sync_first};
                    }
                }
            }
        }
        Time::HiRes::sleep($opt{step} // 0.5);
    }
    return { versions => \@versions, problems => \%problems, segs => \%seen, inits => \%inits, fetches => $fetches };
}

# The checks of one MPD version by the DASH-IF live rules; returns a list of problems.
sub mpd_rules {
    my ($m, %want) = @_;
    my @p;
    my $a = $m->{attr};
    push @p, "type $a->{type}" unless ($a->{type} // '') eq 'dynamic';
    push @p, 'xmlns' unless $m->{text} =~ /<MPD\b[^>]*xmlns="urn:mpeg:dash:schema:mpd:2011"/;
    push @p, "profiles $a->{profiles}" unless ($a->{profiles} // '') =~ /urn:mpeg:dash:profile:isoff-live:2011/;
    for (qw(availabilityStartTime publishTime)) {
        push @p, "$_ not an xs:dateTime" unless defined iso_time($a->{$_});
    }
    for (qw(minBufferTime minimumUpdatePeriod timeShiftBufferDepth suggestedPresentationDelay)) {
        push @p, "$_ not an xs:duration" unless defined xs_duration($a->{$_});
    }
    my $tsbd = xs_duration($a->{timeShiftBufferDepth}) // 0;
    my $spd = xs_duration($a->{suggestedPresentationDelay}) // 1e9;
    push @p, "timeShiftBufferDepth $tsbd, want $want{tsbd}"
        if defined $want{tsbd} && abs($tsbd - $want{tsbd}) > 0.001;
    push @p, "suggestedPresentationDelay $spd >= timeShiftBufferDepth $tsbd" unless $spd < $tsbd;
    push @p, 'no Period' unless @{ $m->{periods} };
    push @p, 'no UTCTiming' unless @{ $m->{utc} };
    push @p, 'UTCTiming before a Period' unless $m->{utc_after_periods};
    for my $u (@{ $m->{utc} }) {
        push @p, "UTCTiming scheme $u->{schemeIdUri}"
            unless ($u->{schemeIdUri} // '') =~ /^urn:mpeg:dash:utc:(http-xsdate|http-iso|http-head|direct):2014$/;
    }
    for my $per (@{ $m->{periods} }) {
        push @p, 'Period without id or start' unless defined $per->{attr}{id} && defined xs_duration($per->{attr}{start});
        for my $set (@{ $per->{sets} }) {
            push @p, 'AdaptationSet without id' unless defined $set->{attr}{id};
            push @p, "$set->{type}: no timescale" unless ($set->{tmpl}{timescale} // 0) > 1;
            push @p, "$set->{type}: media template $set->{tmpl}{media}" unless ($set->{tmpl}{media} // '') =~ /\$Number\$/;
            push @p, "$set->{type}: Representation without id or bandwidth"
                unless defined $set->{rep}{id} && ($set->{rep}{bandwidth} // 0) > 0;
            push @p, "$set->{type}: negative S\@r" if $set->{bad_r};
            push @p, "$set->{type}: no S" unless @{ $set->{segs} };
            my $prev;
            for my $s (@{ $set->{segs} }) {
                push @p, "$set->{type}: S\@d $s->{d}" unless $s->{d} > 0;
                push @p, "$set->{type}: segment $s->{n} starts at $s->{t}, previous ends at " . ($prev->{t} + $prev->{d})
                    if $prev && $s->{t} != $prev->{t} + $prev->{d};
                $prev = $s;
            }
        }
    }
    return @p;
}

# Checks across the versions of a watch: AST and ids constant, publishTime increasing, listed
# segments keep t/d, numbers rise, the availability of each new segment. Returns (problems,
# availability lags in s: publishTime of the first version listing a segment minus its announced
# availability).
sub across_versions {
    my ($versions) = @_;
    my (@p, @lags, %known);
    my ($ast0, $pt_prev, $ids0);
    for my $v (@$versions) {
        my $m = $v->{mpd};
        my $ast = $m->{attr}{availabilityStartTime} // '';
        $ast0 //= $ast;
        push @p, "availabilityStartTime changed from $ast0 to $ast" unless $ast eq $ast0;
        my $pt = iso_time($m->{attr}{publishTime}) // 0;
        push @p, "publishTime $m->{attr}{publishTime} not after the previous version's" if defined $pt_prev && $pt <= $pt_prev;
        $pt_prev = $pt;
        my $ids = join ';', map { my $per = $_; "P$per->{attr}{id}\@$per->{attr}{start}:" .
            join(',', map { "$_->{attr}{id}/$_->{rep}{id}/$_->{type}" } @{ $per->{sets} }) } @{ $m->{periods} };
        for my $per (@{ $m->{periods} }) {
            my $pstart = xs_duration($per->{attr}{start}) // 0;
            for my $set (@{ $per->{sets} }) {
                my $ts = $set->{tmpl}{timescale} || 1;
                my $pto = $set->{tmpl}{presentationTimeOffset} // 0;
                for my $s (@{ $set->{segs} }) {
                    my $key = "$set->{type}/$s->{n}";
                    if (my $k = $known{$key}) {
                        push @p, "$key was t=$k->{t} d=$k->{d}, now t=$s->{t} d=$s->{d}"
                            unless $k->{t} == $s->{t} && $k->{d} == $s->{d};
                    } else {
                        $known{$key} = $s;
                        my $avail = iso_time($ast) + $pstart + ($s->{t} + $s->{d} - $pto) / $ts;
                        push @lags, $pt - $avail;
                    }
                }
            }
        }
        # A Period's id, start and AdaptationSets never change while it is shown.
        for my $per (@{ $m->{periods} }) {
            my $sig = "$per->{attr}{start}:" . join(',', map { "$_->{attr}{id}/$_->{rep}{id}" } @{ $per->{sets} });
            my $k = "period $per->{attr}{id}";
            $known{$k} //= { sig => $sig };
            push @p, "$k was $known{$k}{sig}, now $sig" unless $known{$k}{sig} eq $sig;
        }
    }
    return (\@p, \@lags);
}

sub summary {
    my ($probs) = @_;
    my @all = map { my $k = $_; map { "$k: $_" } @{ $probs->{$k} } } sort keys %$probs;
    splice(@all, 12, @all - 12, '... ' . (@all - 12) . ' more') if @all > 12;
    return @all;
}

sub max_of { my $m; for (@_) { $m = $_ if !defined $m || $_ > $m } $m }
sub min_of { my $m; for (@_) { $m = $_ if !defined $m || $_ < $m } $m }

# The names of the files in a directory.
sub files_in {
    my ($dir) = @_;
    opendir(my $d, $dir) or return ();
    return sort grep { !/^\.\.?$/ } readdir $d;
}

# Decodes $secs s of $src with FFmpeg: (video frames, audio frames, stderr, exit code).
sub ffmpeg_frames {
    my ($src, $secs, $limit) = @_;
    my ($code, $out, $err) = Test::Nginx::Rtmp::run_cmd(['ffmpeg', '-hide_banner', '-nostdin', '-v', 'error',
        '-i', $src, '-t', $secs, '-map', '0', '-f', 'framemd5', '-'], timeout => $limit // ($secs + 40));
    my (%type, %n);
    for (split /\n/, $out) {
        if (/^#media_type (\d+): (\w+)/) { $type{$1} = $2; next }
        $n{$1}++ if /^\s*(\d+),/;
    }
    my ($v, $a) = (0, 0);
    for (keys %n) { $v += $n{$_} if ($type{$_} // '') eq 'video'; $a += $n{$_} if ($type{$_} // '') eq 'audio' }
    return ($v, $a, $err, $code);
}

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

=== TEST 2: irregular GOPs: every segment starts at a keyframe, lasts at least dash_fragment, and the MPD and boxes agree
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        live on;
        dash on;
        dash_path $TEST_NGINX_PREFIX/html/dash;
        dash_fragment 2s;
        dash_playlist_length 30s;
    }
}
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_HTTP_PORT;
    location /dash/ {
        alias $TEST_NGINX_PREFIX/html/dash/;
    }
}
--- timeout: 90
--- run
# Keyframes at 0.02, 1.22, 4.62, 5.42, 9.82 s... (target/media/irregular.flv, 12 s, looped).
my $pub = publish("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/irr", file => media('irregular.flv'), loop => 1, timeout => 60);
ok(wait_until(sub { -s "$TEST_NGINX_PREFIX/html/dash/irr.mpd" }, 15, 0.1), 'the MPD appears')
    or diag(publisher_log($pub));
my $w = watch_mpd('/dash/irr.mpd', 16, step => 0.5);
my @v = @{ $w->{versions} };
my @rule_problems = map { my $i = $_; map { "version $i: $_" } mpd_rules($v[$i]{mpd}, tsbd => 30) } 0 .. $#v;
is_deeply(\@rule_problems, [], 'every version follows the live rules') or diag(explain(\@rule_problems));
my ($cross) = across_versions(\@v);
is_deeply($cross, [], 'across versions: nothing listed changes') or diag(explain($cross));
for my $kind (qw(seg_status boxes tfdt duration sync)) {
    is_deeply($w->{problems}{$kind} // [], [], "no $kind problem") or diag(explain($w->{problems}{$kind}));
}
my $sets = sets_of($v[-1]{mpd});
my @vd = map { $_->{d} / 90000 } @{ $sets->{video}{segs} || [] };
note('video segment durations: ' . join(' ', map { sprintf '%.3f', $_ } @vd));
cmp_ok(scalar @vd, '>=', 3, 'at least 3 video segments listed');
is_deeply([grep { $_ < 1.99 } @vd[0 .. $#vd]], [], 'no video segment shorter than dash_fragment (cut only at keyframes)');
ok((grep { $_ > 2.5 } @vd), 'some segments are longer than dash_fragment (the keyframes decide)');
my $max = xs_duration($v[-1]{mpd}{attr}{maxSegmentDuration});
ok(defined $max && $max + 0.001 >= max_of(@vd), "maxSegmentDuration ($max) covers every segment");
my @ad = map { $_->{d} / 44100 } @{ $sets->{audio}{segs} || [] };
my $vsum = 0; $vsum += $_ for @vd;
my $asum = 0; $asum += $_ for @ad;
# Audio segments follow the video cuts: their total covers the same span (within a segment's
# edge effects: audio starts/ends a frame apart).
cmp_ok(abs($vsum - $asum), '<', 0.5, sprintf('audio (%.2f s) and video (%.2f s) timelines cover the same span', $asum, $vsum));
stop($pub);

=== TEST 3: window: segments leave the MPD after dash_playlist_length and their files go only later; an ended stream's files are deleted (kept with dash_cleanup off)
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application short {
        live on;
        dash on;
        dash_path $TEST_NGINX_PREFIX/html/dash;
        dash_fragment 2s;
        dash_playlist_length 6s;
    }
    application keep {
        live on;
        dash on;
        dash_path $TEST_NGINX_PREFIX/html/keep;
        dash_fragment 2s;
        dash_playlist_length 6s;
        dash_cleanup off;
    }
}
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_HTTP_PORT;
    location /dash/ {
        alias $TEST_NGINX_PREFIX/html/dash/;
    }
}
--- timeout: 120
--- run
my $dir = "$TEST_NGINX_PREFIX/html/dash";
my $kdir = "$TEST_NGINX_PREFIX/html/keep";
my $pub = publish("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/short/win", loop => 1, timeout => 60);
my $kpub = publish("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/keep/win", loop => 1, timeout => 60);
ok(wait_until(sub { -s "$dir/win.mpd" }, 15, 0.1), 'the MPD appears') or diag(publisher_log($pub));

# Every 0.25 s for 26 s: which segments the MPD lists, and which files exist.
my (%seg, @problems, $tsbd, $maxseg, $last_text);
my $end = Time::HiRes::time() + 26;
while (Time::HiRes::time() < $end) {
    my $text = Test::Nginx::Rtmp::slurp("$dir/win.mpd");
    my $m = parse_mpd($text) or next;
    my $now = Time::HiRes::time();
    my $pt = iso_time($m->{attr}{publishTime});
    $tsbd //= xs_duration($m->{attr}{timeShiftBufferDepth});
    $maxseg = xs_duration($m->{attr}{maxSegmentDuration});
    my %listed;
    for my $set (values %{ sets_of($m) }) {
        for my $s (@{ $set->{segs} }) {
            (my $f = $set->{tmpl}{media}) =~ s/\$Number\$/$s->{n}/;
            $listed{$f} = 1;
            $seg{$f}{listed_pt} //= $pt;
            push @problems, "$f listed but missing on disk" unless -e "$dir/$f";
        }
    }
    for my $f (keys %seg) {
        next if $listed{$f};
        $seg{$f}{left_pt} //= $pt;
        $seg{$f}{gone} //= $now unless -e "$dir/$f";
    }
    Time::HiRes::sleep(0.25);
}
is_deeply(\@problems, [], 'every listed segment exists') or diag(explain(\@problems));
is($tsbd, 6, 'timeShiftBufferDepth = dash_playlist_length');
my @left = grep { defined $seg{$_}{left_pt} } keys %seg;
cmp_ok(scalar @left, '>=', 6, scalar(@left) . ' segments left the MPD');
my @gone = grep { defined $seg{$_}{gone} } @left;
cmp_ok(scalar @gone, '>=', 2, scalar(@gone) . ' of them were deleted meanwhile');
# Deleted no earlier than timeShiftBufferDepth + the longest segment after they left the MPD
# (publishTime of the first version without them; 0.3 s for the poll and clock reading).
my @early = map { sprintf '%s deleted %.2f s after it left', $_, $seg{$_}{gone} - $seg{$_}{left_pt} }
    grep { $seg{$_}{gone} - $seg{$_}{left_pt} < $tsbd + $maxseg - 0.3 } @gone;
is_deeply(\@early, [], "no file deleted before timeShiftBufferDepth + maxSegmentDuration ($maxseg s) after it left the MPD");
note(join ', ', map { sprintf '%.1f', $seg{$_}{gone} - $seg{$_}{left_pt} } sort @gone);
# Files that left long enough ago are gone (deletions happen when later segments complete).
my @stale = grep { !defined $seg{$_}{gone} && $seg{$_}{left_pt} < $end - ($tsbd + $maxseg + 2 * $maxseg + 1) } @left;
is_deeply(\@stale, [], 'files that left the window long ago are deleted');
# Listing: the window (6 s) plus less than one segment.
my $m = parse_mpd(Test::Nginx::Rtmp::slurp("$dir/win.mpd"));
my $vlisted = 0; $vlisted += $_->{d} / 90000 for @{ sets_of($m)->{video}{segs} };
cmp_ok($vlisted, '>=', 6, "video listed: $vlisted s >= the window");
cmp_ok($vlisted, '<', 6 + $maxseg + 0.01, 'and less than the window plus a segment');

my @kept_before = files_in($kdir);
stop($pub);
stop($kpub);
ok(wait_unpublished('win', 2, 10), 'both streams ended');
my $km = parse_mpd(Test::Nginx::Rtmp::slurp("$kdir/win.mpd"));
ok(wait_until(sub { !files_in($dir) }, 25, 0.5), 'dash_cleanup on: every file of the ended stream is deleted')
    or diag(explain([files_in($dir)]));
my @kept = files_in($kdir);
my @want = ('win.mpd', 'win-init.m4a', 'win-init.m4v',
            map { my $set = $_; map { (my $f = $set->{tmpl}{media}) =~ s/\$Number\$/$_->{n}/; $f } @{ $set->{segs} } } values %{ sets_of($km) });
my %have = map { $_ => 1 } @kept;
is_deeply([grep { !$have{$_} } @want], [], 'dash_cleanup off: the MPD, init segments and listed segments stay')
    or diag(explain(\@kept));
cmp_ok(scalar(grep { /^win-\d+\.m4v$/ } @kept), '>=', 3, 'with their segments');
is_deeply([grep { /\.tmp$/ } @kept], [], 'and no temporary file');

=== TEST 4: dash_nested: <name>/index.mpd, init.m4v, <N>.m4v; a republish gets new segment numbers and a new availabilityStartTime
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        live on;
        dash on;
        dash_path $TEST_NGINX_PREFIX/html/dash;
        dash_fragment 2s;
        dash_nested on;
    }
}
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_HTTP_PORT;
    location /dash/ {
        alias $TEST_NGINX_PREFIX/html/dash/;
    }
}
--- timeout: 90
--- run
my $dir = "$TEST_NGINX_PREFIX/html/dash/nest";
my (@firsts, @numbers, @asts);
for my $round (1, 2) {
    my $pub = publish("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/nest", loop => 1, timeout => 60);
    ok(wait_published('nest', $round), "publish $round");
    # Wait for a new MPD of this publish with 2 video segments.
    my $m = wait_until(sub {
        my $m = parse_mpd(Test::Nginx::Rtmp::slurp("$dir/index.mpd")) or return 0;
        return 0 if $round == 2 && $m->{attr}{availabilityStartTime} eq $asts[0];
        return @{ sets_of($m)->{video}{segs} || [] } >= 2 ? $m : 0;
    }, 15, 0.2);
    ok($m, "round $round: $dir/index.mpd lists 2 video segments") or do { diag(publisher_log($pub)); last };
    my $sets = sets_of($m);
    is($sets->{video}{tmpl}{initialization}, 'init.m4v', 'initialization relative to the MPD: init.m4v');
    is($sets->{video}{tmpl}{media}, '$Number$.m4v', 'media: $Number$.m4v');
    is($sets->{audio}{tmpl}{media}, '$Number$.m4a', 'audio media: $Number$.m4a');
    ok(-s "$dir/init.m4v" && -s "$dir/init.m4a", 'init.m4v and init.m4a in the stream directory');
    my $w = watch_mpd('/dash/nest/index.mpd', 2.5, step => 0.5);
    is_deeply($w->{problems}{seg_status} // [], [], 'every listed segment is served from /dash/nest/');
    is_deeply([ (summary({ map { $_ => $w->{problems}{$_} } grep { $_ ne 'seg_status' } keys %{ $w->{problems} } })) ], [],
              'and passes the box checks');
    my $mm = $w->{versions}[-1]{mpd};
    push @asts, $mm->{attr}{availabilityStartTime};
    push @numbers, [ map { $_->{n} } @{ sets_of($mm)->{video}{segs} } ];
    ok((grep { -e "$dir/$_.m4v" } @{ $numbers[-1] }) == @{ $numbers[-1] }, 'the segments are <N>.m4v files');
    stop($pub);
    ok(wait_unpublished('nest', $round, 10), "unpublish $round");
}
isnt($asts[1], $asts[0], 'the republish has its own availabilityStartTime');
my $max1 = max_of(@{ $numbers[0] || [] });
my $min2 = min_of(@{ $numbers[1] || [] });
ok(defined $max1 && defined $min2 && $min2 > $max1, "the republish's numbers ($min2...) follow the first publish's (...$max1): no name reused");
is_deeply([grep { /\.mpd$/ } files_in("$TEST_NGINX_PREFIX/html/dash")], [], 'no flat MPD next to the directory');

=== TEST 5: audio-only and video-only streams: an MPD with one AdaptationSet each, segments checked
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        live on;
        dash on;
        dash_path $TEST_NGINX_PREFIX/html/dash;
        dash_fragment 2s;
    }
}
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_HTTP_PORT;
    location /dash/ {
        alias $TEST_NGINX_PREFIX/html/dash/;
    }
}
--- timeout: 90
--- run
my $dir = "$TEST_NGINX_PREFIX/html/dash";
my $ap = publish("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/aonly", file => media('test-audio-only.flv'), loop => 1, timeout => 60);
my $vp = publish("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/vonly", file => media('test-video-only.flv'), loop => 1, timeout => 60);
for my $c (['aonly', 'audio', 'm4a', 'mp4a.40.2'], ['vonly', 'video', 'm4v', 'avc1']) {
    my ($name, $type, $ext, $codec) = @$c;
    my $m = wait_until(sub {
        my $m = parse_mpd(Test::Nginx::Rtmp::slurp("$dir/$name.mpd")) or return 0;
        return @{ (values %{ sets_of($m) })[0]{segs} || [] } >= 2 ? $m : 0;
    }, 20, 0.2);
    ok($m, "$name: an MPD with 2 segments") or next;
    my $w = watch_mpd("/dash/$name.mpd", 3, step => 0.5);
    $m = $w->{versions}[-1]{mpd};
    is_deeply([sort keys %{ sets_of($m) }], [$type], "$name: one AdaptationSet, $type");
    is(scalar @{ $m->{periods}[0]{sets} }, 1, "$name: one AdaptationSet in the Period");
    is_deeply([mpd_rules($m)], [], "$name: live rules");
    like(sets_of($m)->{$type}{rep}{codecs} // '', qr/^\Q$codec\E/, "$name: codecs $codec");
    is_deeply([summary($w->{problems})], [], "$name: segments served and their boxes agree with the MPD");
    my $other = $ext eq 'm4a' ? 'm4v' : 'm4a';
    is_deeply([grep { /\.$other$/ } grep { /^\Q$name\E-/ } files_in($dir)], [], "$name: no .$other file");
    my ($fv, $fa, $ferr) = ffmpeg_frames("http://127.0.0.1:$TEST_NGINX_HTTP_PORT/dash/$name.mpd", 3);
    cmp_ok($type eq 'video' ? $fv : $fa, '>=', $type eq 'video' ? 50 : 80, "$name: ffmpeg decodes $type frames over HTTP")
        or diag($ferr);
}
stop($ap);
stop($vp);

=== TEST 6: HEVC (Enhanced RTMP hvc1): codecs hvc1.*, hvc1 sample entry, ffmpeg decodes init + segment
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        live on;
        dash on;
        dash_path $TEST_NGINX_PREFIX/html/dash;
        dash_fragment 2s;
    }
}
--- http_config
server {
    listen 127.0.0.1:$TEST_NGINX_HTTP_PORT;
    location /dash/ {
        alias $TEST_NGINX_PREFIX/html/dash/;
    }
}
--- timeout: 90
--- run
my $dir = "$TEST_NGINX_PREFIX/html/dash";
my $pub = rtmp_publish("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/hevc", hevc_flv('enhanced'), loop => 1,
                       args => ['--fourcc', 'hvc1'], timeout => 60);
my $m = wait_until(sub {
    my $m = parse_mpd(Test::Nginx::Rtmp::slurp("$dir/hevc.mpd")) or return 0;
    return @{ sets_of($m)->{video}{segs} || [] } >= 2 ? $m : 0;
}, 20, 0.2);
ok($m, 'an MPD with 2 HEVC segments') or diag(publisher_log($pub));
my $w = watch_mpd('/dash/hevc.mpd', 3, step => 0.5);
$m = $w->{versions}[-1]{mpd};
my $v = sets_of($m)->{video};
like($v->{rep}{codecs} // '', qr/^hvc1\.\d+\.[0-9A-F]+\.[LH]\d+(\.[0-9A-F]{1,2})*$/, "codecs $v->{rep}{codecs}");
is_deeply([mpd_rules($m)], [], 'live rules');
is_deeply([summary($w->{problems})], [], 'segments served; boxes agree with the MPD; sync sample first');
my ($init) = values %{ $w->{inits} };
is($init->{entry}, 'hvc1', 'init: hvc1 sample entry');
my $seg = $v->{segs}[-1];
(my $f = $v->{tmpl}{media}) =~ s/\$Number\$/$seg->{n}/;
my $cat = Test::Nginx::Rtmp::tmp_dir() . '/hevc-cat.mp4';
open my $fh, '>', $cat or die;
print $fh Test::Nginx::Rtmp::slurp("$dir/hevc-init.m4v"), Test::Nginx::Rtmp::slurp("$dir/$f");
close $fh;
my ($code, $out, $err) = Test::Nginx::Rtmp::run_cmd(['ffprobe', '-v', 'error', '-show_entries',
    'stream=codec_name,codec_tag_string,width,height', '-of', 'csv=p=0', $cat], timeout => 20);
like($out, qr/^hevc,hvc1,\d+,\d+/m, "ffprobe: $out") or diag($err);
my ($fv, undef, $ferr) = ffmpeg_frames($cat, 30);
my $want = int($seg->{d} / 90000 * 25 + 0.5);
cmp_ok($fv, '>=', $want - 1, "ffmpeg decodes the segment's frames ($fv, ~$want expected)");
is($ferr, '', 'without an error');
stop($pub);

=== TEST 7: dash on without dash_path: nginx -t fails and names the application
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        live on;
        dash on;
    }
}
--- must_die: "dash" is on in application "live" but "dash_path" is not set

=== TEST 8: dash_clock_compensation http_iso without dash_clock_helper_uri fails nginx -t
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        live on;
        dash on;
        dash_path $TEST_NGINX_PREFIX/html/dash;
        dash_clock_compensation http_iso;
    }
}
--- must_die: "dash_clock_compensation" needs "dash_clock_helper_uri"

=== TEST 9: http_iso with a helper URI: the MPD's UTCTiming points at it; a stream name starting with a dot is refused
--- config
server {
    listen $TEST_NGINX_RTMP_PORT;
    application live {
        live on;
        dash on;
        dash_path $TEST_NGINX_PREFIX/html/dash;
        dash_fragment 2s;
        dash_clock_compensation http_iso;
        dash_clock_helper_uri http://127.0.0.1:$TEST_NGINX_HTTP_PORT/time;
    }
}
--- timeout: 60
--- run
my $dir = "$TEST_NGINX_PREFIX/html/dash";
my $pub = publish("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/clk", loop => 1, timeout => 30);
my $m = wait_until(sub { parse_mpd(Test::Nginx::Rtmp::slurp("$dir/clk.mpd")) }, 15, 0.2);
ok($m, 'an MPD') or diag(publisher_log($pub));
is($m->{utc}[0]{schemeIdUri}, 'urn:mpeg:dash:utc:http-iso:2014', 'first UTCTiming: http-iso');
is($m->{utc}[0]{value}, "http://127.0.0.1:$TEST_NGINX_HTTP_PORT/time", 'its value is dash_clock_helper_uri');
ok($m->{utc_after_periods}, 'after the Periods');
is_deeply([mpd_rules($m)], [], 'live rules');
stop($pub);

my $dot = publish("rtmp://127.0.0.1:$TEST_NGINX_RTMP_PORT/live/.hidden", loop => 1, timeout => 15);
ok(wait_log(qr/dash: publish refused: stream name starts with a dot/, 1, 10), 'the publish of ".hidden" is refused');
ok(defined wait_publisher($dot, 10), 'the publisher gave up');
is_deeply([grep { /hidden/ } files_in($dir)], [], 'nothing written for it');
--- error_log
dash: publish refused: stream name starts with a dot

=== TEST 10: dash.js (pinned, headless Chromium) plays the live MPD: currentTime advances, no error; live latency printed
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
