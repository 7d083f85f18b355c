<?php

namespace Acme\Greeter;

/**
 * Says hello, depending on the hour of the day.
 */
final class Greeter
{
    public function __construct(private string $siteName)
    {
    }

    public function greet(\DateTimeInterface $now): string
    {
        $hour = (int) $now->format('G');
        $part = match (true) {
            $hour < 5 => 'Good night',
            $hour < 12 => 'Good morning',
            $hour < 18 => 'Good afternoon',
            default => 'Good evening',
        };

        return sprintf('%s from %s!', $part, $this->siteName);
    }
}
