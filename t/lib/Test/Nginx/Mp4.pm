package Test::Nginx::Mp4;
# ISO BMFF (fMP4) readers for the tests: boxes, init segments (ftyp+moov), media fragments
# (moof+mdat), and ffprobe of an init with a fragment. For t/29-llhls.t and the fMP4 HLS suites
# (through t/lib/Test/Nginx/HlsFmp4.pm).
use strict;
use warnings;
use Exporter 'import';
use File::Temp ();

our @EXPORT_OK = qw(boxes child children parse_init parse_segment tfdt_problems probe_bytes);

# ISO BMFF boxes of $d between $from and $to: [[type, offset, size], ...].
sub boxes {
    my ($d, $from, $to) = @_;
    $from //= 0;
    $to //= length $d;
    my @b;
    while ($from + 8 <= $to) {
        my ($size, $type) = unpack('N a4', substr($d, $from, 8));
        last if $size < 8 || $from + $size > $to;
        push @b, [$type, $from, $size];
        $from += $size;
    }
    return @b;
}

sub child {
    my ($d, $box, $type, $skip) = @_;
    return undef unless $box;
    my ($c) = grep { $_->[0] eq $type } boxes($d, $box->[1] + 8 + ($skip // 0), $box->[1] + $box->[2]);
    return $c;
}

sub children {
    my ($d, $box, $skip) = @_;
    return boxes($d, $box->[1] + 8 + ($skip // 0), $box->[1] + $box->[2]);
}

# An init segment: { top => 'ftyp,moov', moov => 'mvhd,trak,trak,mvex', tracks => [{id, handler,
# entry, config}], trex => [ids], next_track_id }.
sub parse_init {
    my ($d) = @_;
    my @top = boxes($d);
    my %r = (top => join(',', map { $_->[0] } @top), tracks => [], trex => []);
    my ($moov) = grep { $_->[0] eq 'moov' } @top or return \%r;
    my @mc = children($d, $moov);
    $r{moov} = join(',', map { $_->[0] } @mc);
    for my $b (@mc) {
        if ($b->[0] eq 'mvhd') { $r{next_track_id} = unpack('N', substr($d, $b->[1] + $b->[2] - 4, 4)) }
        elsif ($b->[0] eq 'trak') {
            my $tkhd = child($d, $b, 'tkhd');
            my $mdia = child($d, $b, 'mdia');
            my $hdlr = child($d, $mdia, 'hdlr');
            my $stsd = child($d, child($d, child($d, $mdia, 'minf'), 'stbl'), 'stsd');
            next unless $tkhd && $hdlr && $stsd;
            my ($entry) = boxes($d, $stsd->[1] + 16, $stsd->[1] + $stsd->[2]);
            next unless $entry;
            push @{ $r{tracks} }, { id => unpack('N', substr($d, $tkhd->[1] + 20, 4)),
                handler => substr($d, $hdlr->[1] + 16, 4), entry => $entry->[0],
                config => join(',', map { $_->[0] } boxes($d, $entry->[1] + ($entry->[0] eq 'mp4a' ? 36 : 86),
                                                          $entry->[1] + $entry->[2])) };
        }
        elsif ($b->[0] eq 'mvex') {
            push @{ $r{trex} }, map { unpack('N', substr($d, $_->[1] + 12, 4)) } grep { $_->[0] eq 'trex' } children($d, $b);
        }
    }
    return \%r;
}

# The fragments of a segment (or part): { top => 'moof,mdat,...', frags => [{seq, track, tfdt,
# dur (sum of trun durations), count, first_flags, offset_ok (the trun data offset lands in the
# next mdat, the sample sizes fill it)}] }.
sub parse_segment {
    my ($d) = @_;
    my @top = boxes($d);
    my @f;
    for my $i (0 .. $#top) {
        next unless $top[$i][0] eq 'moof';
        my $moof = $top[$i];
        my $mdat = $top[$i + 1];
        my $mfhd = child($d, $moof, 'mfhd');
        my $traf = child($d, $moof, 'traf');
        my $tfhd = child($d, $traf, 'tfhd');
        my $tfdt = child($d, $traf, 'tfdt');
        my $trun = child($d, $traf, 'trun');
        next unless $mfhd && $tfhd && $tfdt && $trun;
        my %fr = (seq => unpack('N', substr($d, $mfhd->[1] + 12, 4)));
        $fr{track} = unpack('N', substr($d, $tfhd->[1] + 12, 4));
        my $v = unpack('C', substr($d, $tfdt->[1] + 8, 1));
        $fr{tfdt} = $v ? unpack('Q>', substr($d, $tfdt->[1] + 12, 8)) : unpack('N', substr($d, $tfdt->[1] + 12, 4));
        my $flags = unpack('N', substr($d, $trun->[1] + 8, 4)) & 0xffffff;
        my $at = $trun->[1] + 12;
        my $count = unpack('N', substr($d, $at, 4)); $at += 4;
        my $off = 0;
        if ($flags & 1) { $off = unpack('l>', substr($d, $at, 4)); $at += 4 }
        if ($flags & 4) { $fr{first_flags} = unpack('N', substr($d, $at, 4)); $at += 4 }
        my ($dur, $size) = (0, 0);
        for my $s (1 .. $count) {
            if ($flags & 0x100) { $dur += unpack('N', substr($d, $at, 4)); $at += 4 }
            if ($flags & 0x200) { $size += unpack('N', substr($d, $at, 4)); $at += 4 }
            if ($flags & 0x400) { $fr{first_flags} //= unpack('N', substr($d, $at, 4)); $at += 4 }
            if ($flags & 0x800) { $at += 4 }
        }
        @fr{qw(dur count)} = ($dur, $count);
        $fr{offset_ok} = $mdat && $mdat->[0] eq 'mdat' && $moof->[1] + $off == $mdat->[1] + 8
            && $size == $mdat->[2] - 8 ? 1 : 0;
        push @f, \%fr;
    }
    return { top => join(',', map { $_->[0] } @top), frags => \@f };
}

# Problems of a run of fragments (one segment, or its parts in order): layout, data offsets, mfhd
# sequence numbers that do not grow, a track whose tfdt does not continue where it stopped.
# $end (a hashref track => next tfdt) and $last_seq (a scalar ref) carry the state across calls.
sub tfdt_problems {
    my ($what, $d, $end, $last_seq) = @_;
    my @bad;
    my $sg = parse_segment($d);
    push @bad, "$what: top $sg->{top}" unless $sg->{top} =~ /^(moof,mdat,)*moof,mdat$/;
    for my $f (@{ $sg->{frags} }) {
        push @bad, "$what: mfhd $f->{seq} after $$last_seq" if defined $$last_seq && $f->{seq} <= $$last_seq;
        $$last_seq = $f->{seq};
        push @bad, "$what: track $f->{track} data offset/sizes" unless $f->{offset_ok};
        if (defined $end->{ $f->{track} } && $end->{ $f->{track} } != $f->{tfdt}) {
            push @bad, "$what: track $f->{track} tfdt $f->{tfdt} != $end->{ $f->{track} }";
        }
        $end->{ $f->{track} } = $f->{tfdt} + $f->{dur};
    }
    return @bad;
}

# ffprobe of the concatenated byte strings (an init, then fragments): ("codec,tag;codec,tag",
# stderr). Runs it with Test::Nginx::Rtmp's run_cmd (the suites load that module first).
sub probe_bytes {
    my (@chunks) = @_;
    my $tmp = File::Temp->new(SUFFIX => '.mp4', TMPDIR => 1);
    binmode $tmp;
    print $tmp @chunks;
    close $tmp;
    my ($code, $out, $err) = Test::Nginx::Rtmp::run_cmd(['ffprobe', '-v', 'error', '-show_entries',
        'stream=codec_name,codec_tag_string', '-of', 'csv=p=0', $tmp->filename], timeout => 20);
    $err .= "\n(ffprobe exit code $code)" if $code;
    return (join(';', split /\n/, $out), $err);
}

1;
