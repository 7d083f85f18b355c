<?php

// autoload_real.php: builds and registers the class loader once.

class ComposerAutoloaderInitSlateExample
{
    private static $loader;

    public static function getLoader()
    {
        if (null !== self::$loader) {
            return self::$loader;
        }

        require __DIR__ . '/ClassLoader.php';
        self::$loader = $loader = new \Composer\Autoload\ClassLoader(dirname(__DIR__));

        $map = require __DIR__ . '/autoload_psr4.php';
        foreach ($map as $namespace => $paths) {
            $loader->setPsr4($namespace, $paths);
        }

        $loader->register(true);

        return $loader;
    }
}
