<?php

namespace Composer\Autoload;

/**
 * A small PSR-4 class loader with the same API shape as Composer's
 * (setPsr4, addPsr4, register, loadClass, findFile), enough for this
 * example's vendor/ tree.
 */
class ClassLoader
{
    /** @var string|null */
    private $vendorDir;

    /** @var array<string, list<string>> namespace prefix => directories */
    private $prefixDirsPsr4 = array();

    /** @var array<string, string|false> class => file (or false: not found) */
    private $missingOrFound = array();

    public function __construct($vendorDir = null)
    {
        $this->vendorDir = $vendorDir;
    }

    public function setPsr4($prefix, $paths)
    {
        $this->checkPrefix($prefix);
        $this->prefixDirsPsr4[$prefix] = (array) $paths;
    }

    public function addPsr4($prefix, $paths, $prepend = false)
    {
        $this->checkPrefix($prefix);
        $current = isset($this->prefixDirsPsr4[$prefix]) ? $this->prefixDirsPsr4[$prefix] : array();
        $this->prefixDirsPsr4[$prefix] = $prepend
            ? array_merge((array) $paths, $current)
            : array_merge($current, (array) $paths);
    }

    public function getPrefixesPsr4()
    {
        return $this->prefixDirsPsr4;
    }

    public function register($prepend = false)
    {
        spl_autoload_register(array($this, 'loadClass'), true, $prepend);
    }

    public function unregister()
    {
        spl_autoload_unregister(array($this, 'loadClass'));
    }

    /**
     * @return true|null true if the class was loaded
     */
    public function loadClass($class)
    {
        $file = $this->findFile($class);
        if ($file !== false) {
            includeFile($file);
            return true;
        }

        return null;
    }

    /**
     * @return string|false the file that defines $class, or false
     */
    public function findFile($class)
    {
        if (isset($this->missingOrFound[$class])) {
            return $this->missingOrFound[$class];
        }

        $file = false;
        // Longest prefix first, so that a more specific namespace wins.
        $prefixes = array_keys($this->prefixDirsPsr4);
        usort($prefixes, function ($a, $b) {
            return strlen($b) - strlen($a);
        });
        foreach ($prefixes as $prefix) {
            if (strncmp($class, $prefix, strlen($prefix)) !== 0) {
                continue;
            }
            $relative = strtr(substr($class, strlen($prefix)), '\\', DIRECTORY_SEPARATOR) . '.php';
            foreach ($this->prefixDirsPsr4[$prefix] as $dir) {
                if (is_file($candidate = $dir . DIRECTORY_SEPARATOR . $relative)) {
                    $file = $candidate;
                    break 2;
                }
            }
        }

        return $this->missingOrFound[$class] = $file;
    }

    private function checkPrefix($prefix)
    {
        if ($prefix !== '' && substr($prefix, -1) !== '\\') {
            throw new \InvalidArgumentException('A non-empty PSR-4 prefix must end with a namespace separator.');
        }
    }
}

/**
 * Scope isolated include: the included file cannot see $this or locals.
 */
function includeFile($file)
{
    include $file;
}
